#include "commands/quant_command.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "llmpack/tensor_file.h"

namespace llmpack::commands {

using quantize::QuantizeResult;
using quantize::TensorReport;

absl::StatusOr<QuantizeResult> RunQuantize(
    const quantize::QuantizeOptions& options) {
  return quantize::QuantizePackage(options);
}


nlohmann::json QuantizeReportJson(const QuantizeResult& r) {
  nlohmann::json tensors = nlohmann::json::array();
  for (const TensorReport& t : r.tensors) {
    tensors.push_back({{"file", t.file},
                       {"name", t.name},
                       {"shape", t.shape},
                       {"dtype", DTypeName(t.dtype)},
                       {"group_size", t.group_size},
                       {"scale_dtype", DTypeName(t.scale_dtype)},
                       {"zero_point", t.zero_point},
                       {"method", t.method},
                       {"bytes", t.bytes},
                       {"rel_rms_error", t.rel_rms},
                       {"max_abs_error", t.max_abs},
                       {"rel_weighted_error", t.rel_weighted}});
  }
  return {{"bits_per_weight", r.bits_per_weight},
          {"quantized_weights", r.quantized_weights},
          {"quantized_bytes", r.quantized_bytes},
          {"calibration_tokens", r.calibration_tokens},
          {"calibration_seconds", r.calibration_seconds},
          {"seconds", r.seconds},
          {"tensors", std::move(tensors)}};
}

std::string QuantizeReportText(const QuantizeResult& r) {
  std::string out = absl::StrFormat(
      "%-14s %-28s %-12s %-5s %5s %-6s %10s %10s %10s\n", "file", "tensor",
      "shape", "dtype", "group", "method", "rel_rms", "max_abs", "rel_wtd");
  for (const TensorReport& t : r.tensors) {
    absl::StrAppend(
        &out, absl::StrFormat(
                  "%-14s %-28s %-12s %-5s %5d %-6s %10.5f %10.5f %10s\n",
                  t.file, t.name, ShapeString(t.shape), DTypeName(t.dtype),
                  t.group_size, t.method, t.rel_rms, t.max_abs,
                  t.rel_weighted > 0 ? absl::StrFormat("%.5f", t.rel_weighted)
                                     : std::string("-")));
  }
  absl::StrAppend(
      &out, absl::StrFormat(
                "%d quantized weights in %d bytes: %.4f bits/weight\n",
                r.quantized_weights, r.quantized_bytes, r.bits_per_weight));
  if (r.calibration_tokens > 0) {
    absl::StrAppend(
        &out, absl::StrFormat("calibration: %d tokens in %.1f s\n",
                              r.calibration_tokens, r.calibration_seconds));
  }
  absl::StrAppend(&out, absl::StrFormat("total time %.1f s\n", r.seconds));
  return out;
}

}  // namespace llmpack::commands
