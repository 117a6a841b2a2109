// Calibration for llmquant: runs the runtime's forward pass over calibration
// text (tokenized with the package's own tokenizer) and records, for the
// Linear inputs of one layer at a time, the activation statistics the
// calibrated methods need (quant::InputStats: per-channel mean x^2 and
// optionally E[x x^T]). One layer per pass lets the quantizer calibrate
// layer l on a model whose layers before l are already quantized.
//
// Calibration text must be training-like text, never evaluation text: the
// caller chooses the file; nothing here looks at evaluation data.
//
// Thread safety: Calibrate is self-contained; CalibrationData is immutable
// after it returns.
#ifndef LLMPACK_QUANTIZE_CALIBRATION_H_
#define LLMPACK_QUANTIZE_CALIBRATION_H_

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "llmpack/model_config.h"
#include "quant/methods.h"
#include "runtime/model.h"

namespace llmpack::quantize {

struct CalibrationOptions {
  std::filesystem::path file;  // text (or token ids / windows JSON)
  // Tokens per window (BOS added when the tokenizer adds one); capped at
  // the model's max_position_embeddings.
  int64_t window_tokens = 256;
  // At most about this many tokens are used, as windows spread evenly over
  // the whole file so every part of it contributes.
  int64_t max_tokens = 8192;
};

// Tokens a calibration needs at least for `config`: enough that the second
// moments of the widest Linear input (the MLP width) can have full rank, and
// never fewer than 1024.
int64_t MinCalibrationTokens(const ModelConfig& config);

// Calibration windows (token ids, BOS first when the model adds one).
struct CalibrationSet {
  std::vector<std::vector<int32_t>> windows;
  int64_t tokens = 0;
};

// Reads and tokenizes the calibration file with the tokenizer of the
// package at `package_dir`. Fails, naming the file, when it is missing,
// empty, or holds fewer than MinCalibrationTokens tokens (the message says
// how many are needed).
absl::StatusOr<CalibrationSet> LoadCalibration(
    const std::filesystem::path& package_dir,
    const CalibrationOptions& options);

// The statistics of the Linear inputs of one layer (layer == num_layers:
// the output projection's input).
class CalibrationData {
 public:
  // Statistics for the input of `tensor` ("self_attn.q_proj.weight", ...,
  // or "lm_head.weight" with layer == num_layers); nullptr if another layer
  // or not a Linear.
  const quant::Calibration* For(int64_t layer,
                                const std::string& tensor) const;

 private:
  friend absl::StatusOr<CalibrationData> CollectStatistics(
      const std::filesystem::path&, const CalibrationSet&, int64_t, bool,
      int);
  int64_t layer_ = -1;
  std::map<runtime::LinearInput, quant::Calibration> stats_;
};

// Runs every calibration window through the float package at `package_dir`
// and gathers the statistics of `layer`'s Linear inputs (`with_hessian`:
// also E[x x^T], for GPTQ). Memory: one layer's statistics.
absl::StatusOr<CalibrationData> CollectStatistics(
    const std::filesystem::path& package_dir, const CalibrationSet& set,
    int64_t layer, bool with_hessian, int threads);

}  // namespace llmpack::quantize

#endif  // LLMPACK_QUANTIZE_CALIBRATION_H_
