// Calibration for llmquant: runs the runtime's forward pass over calibration
// text (tokenized with the package's own tokenizer) and records, for every
// Linear input, the activation statistics the calibrated methods need
// (quant::InputStats: per-channel mean x^2 and optionally E[x x^T]).
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
  // At most this many tokens are used, as windows spread evenly over the
  // whole file so every part of it contributes.
  int64_t max_tokens = 8192;
  bool with_hessian = false;  // GPTQ needs E[x x^T]
  int threads = 0;            // forward pass threads (<= 0: all)
};

// Tokens a calibration needs at least for `config`: enough that the second
// moments of the widest Linear input (the MLP width) can have full rank, and
// never fewer than four windows' worth.
int64_t MinCalibrationTokens(const ModelConfig& config);

class CalibrationData {
 public:
  // Statistics for the input of `tensor` ("self_attn.q_proj.weight", ...,
  // or "lm_head.weight" with layer == num_layers); nullptr if unknown.
  const quant::Calibration* For(int64_t layer, const std::string& tensor) const;
  int64_t tokens() const { return tokens_; }
  int64_t windows() const { return windows_; }

 private:
  friend absl::StatusOr<CalibrationData> Calibrate(const std::filesystem::path&,
                                                   const CalibrationOptions&);
  std::map<std::pair<int64_t, runtime::LinearInput>, quant::Calibration> stats_;
  int64_t tokens_ = 0;
  int64_t windows_ = 0;
};

// Fails (naming the file) when the file is missing, empty, or holds fewer
// than MinCalibrationTokens tokens (the message says how many are needed).
absl::StatusOr<CalibrationData> Calibrate(
    const std::filesystem::path& package_dir,
    const CalibrationOptions& options);

}  // namespace llmpack::quantize

#endif  // LLMPACK_QUANTIZE_CALIBRATION_H_
