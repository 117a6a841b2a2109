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

// Recovers the inverse frequencies from cos/sin tables of `rows` positions
// and `cols` columns (cols = n, or 2n with the two halves repeated as Hugging
// Face's cos_cached is), values as stored (f32). Row p holds cos/sin of
// p * inv_i; each frequency is read at the largest position whose angle is
// still below 3 radians, so its error is a few f32 ulps, not an ulp of 1.
absl::StatusOr<std::vector<double>> InverseFrequenciesFromTables(
    absl::Span<const double> cos, absl::Span<const double> sin, int64_t rows,
    int64_t cols);

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
