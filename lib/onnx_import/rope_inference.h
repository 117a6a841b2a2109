// Recovers RoPE parameters (theta, and Llama 3 frequency scaling) from the
// inverse-frequency vector an exporter baked into the graph. Pure functions;
// thread-safe.
#ifndef LLMPACK_ONNX_IMPORT_ROPE_INFERENCE_H_
#define LLMPACK_ONNX_IMPORT_ROPE_INFERENCE_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "llmpack/model_config.h"

namespace llmpack::onnx_import {

// The inverse frequencies Hugging Face computes for `rope` ("default" or
// "llama3") and a rotary dimension of `head_dim`, in double precision.
std::vector<double> RopeInverseFrequencies(const RopeConfig& rope,
                                           int64_t head_dim);

// Finds a RopeConfig whose frequencies match `inv_freq` (f32 values from the
// graph) to float precision. Llama 3 scaling is defined up to a common scale
// of (original_max_positions, low_freq_factor, high_freq_factor); the result
// fixes low_freq_factor = 1 and, when only one frequency is interpolated,
// high_freq_factor = 4 (Llama 3's value). Fails, saying why, when neither
// form fits (e.g. partial rotary, YaRN).
absl::StatusOr<RopeConfig> InferRope(absl::Span<const double> inv_freq,
                                     int64_t head_dim);

}  // namespace llmpack::onnx_import

#endif  // LLMPACK_ONNX_IMPORT_ROPE_INFERENCE_H_
