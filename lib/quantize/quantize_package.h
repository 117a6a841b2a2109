// The package quantizer behind llmquant: reads a float package file by file
// (one block at a time, so peak memory stays near one block), quantizes every
// block Linear and the output projection (optionally the embedding to q8),
// keeps norms and biases float, and writes a new package atomically (a
// staging folder renamed into place) with tokenizer, config and chat template
// carried over and a "quantization" object in the manifest.
//
// Thread safety: QuantizePackage is self-contained (it uses `threads`
// threads internally).
#ifndef LLMPACK_QUANTIZE_QUANTIZE_PACKAGE_H_
#define LLMPACK_QUANTIZE_QUANTIZE_PACKAGE_H_

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "llmpack/dtype.h"
#include "llmpack/manifest.h"
#include "nlohmann/json.hpp"

namespace llmpack::quantize {

// Group size value meaning one group per row.
inline constexpr int64_t kPerRowGroup = -1;

// What to do with one class of tensors.
enum class TensorTarget { kQ4, kQ8, kKeep };

struct QuantizeOptions {
  std::filesystem::path input_dir;
  std::filesystem::path output_dir;
  DType dtype = DType::kQ4;                      // block Linears: kQ4 or kQ8
  std::optional<TensorTarget> lm;                // nullopt: same as `dtype`
  TensorTarget embedding = TensorTarget::kKeep;  // kKeep or kQ8
  // 32, 64, 128 or kPerRowGroup; nullopt: 32 for q4, 128 for q8. A group
  // wider than a tensor's rows becomes per-row for that tensor.
  std::optional<int64_t> group_size;
  // Zero points (--asym) or not (--sym); nullopt: asymmetric for q4 (the
  // 4-bit zero point buys a whole code of range for 0.125 bits/weight),
  // symmetric for q8 (256 levels leave nothing for a zero point to win).
  std::optional<bool> zero_point;
  DType scale_dtype = DType::kF16;
  // "rtn", "search", "weighted", "gptq" or "auto" (gptq with a calibration
  // file, search without).
  std::string method = "auto";
  std::filesystem::path calibration_file;  // empty: none
  int64_t calibration_tokens = 8192;       // most tokens used
  int threads = 0;                         // <= 0: all hardware threads
  bool force = false;  // replace output_dir; re-quantize a quantized input
  bool show_progress = false;
  // f32 bytes of rows read and quantized per step (at least one row), so a
  // huge tensor is never in memory as f32 at once. The output does not
  // depend on it (rows are quantized independently).
  uint64_t chunk_bytes = 32 << 20;
};

// How one tensor came out.
struct TensorReport {
  std::string file;  // "block_003.bin"
  std::string name;  // "mlp.down_proj.weight"
  std::vector<int64_t> shape;
  DType dtype = DType::kF32;
  int64_t group_size = 0;  // 0 for float tensors
  DType scale_dtype = DType::kF16;
  bool zero_point = false;
  std::string method;  // empty for float tensors
  uint64_t bytes = 0;
  double rel_rms = 0;       // ||W - Q|| / ||W||
  double max_abs = 0;       // max |W - Q|
  double rel_weighted = 0;  // same, weighted by input mean x^2 (calibrated)
};

struct QuantizeResult {
  Manifest manifest;
  std::vector<TensorReport> tensors;  // every quantized tensor, file order
  uint64_t quantized_weights = 0;
  uint64_t quantized_bytes = 0;  // codes + scales + zero points
  double bits_per_weight = 0;    // quantized_bytes * 8 / quantized_weights
  int64_t calibration_tokens = 0;
  double calibration_seconds = 0;
  double seconds = 0;  // whole run
};

// Errors (nothing is written): an already-quantized input without `force`,
// an unsupported group size (0 or not 32/64/128/per-row), an unknown method,
// a calibrated method without a calibration file, a missing, empty or
// too-short calibration file, output inside the input.
absl::StatusOr<QuantizeResult> QuantizePackage(const QuantizeOptions& options);

}  // namespace llmpack::quantize

#endif  // LLMPACK_QUANTIZE_QUANTIZE_PACKAGE_H_
