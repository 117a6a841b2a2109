// Reads ONNX Runtime MatMulNBits weights (com.microsoft): B is uint8
// [N][blocks][block_size * bits / 8], codes low nibble first along K; one
// scale per (row, block); zero points packed the same way (uint8) or stored
// as floats, 2^(bits-1) when absent. Pure functions; thread-safe.
#ifndef LLMPACK_ONNX_IMPORT_NBITS_H_
#define LLMPACK_ONNX_IMPORT_NBITS_H_

#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "onnx_import/graph.h"
#include "onnx_import/graph_analysis.h"
#include "onnx_import/onnx_model.h"

namespace llmpack::onnx_import {

// The weight of a MatMulNBits node (attributes K, N, bits, block_size;
// inputs B, scales[, zero_points[, g_idx[, bias]]]), shape [N, K]. Refuses,
// naming the node, unsupported bits/block sizes, g_idx and non-constant
// inputs.
absl::StatusOr<WeightRef> ResolveNBitsWeight(const Graph& graph,
                                             const onnx::NodeProto& node);

// Checks dtypes and sizes of B, scales and zero points against N, K, bits
// and block_size, naming the node and the tensor at fault.
absl::Status ValidateNBits(const OnnxModel& model, const WeightRef& weight);

// The weight as f32 [N, K] (Hugging Face layout): (code - zero) * scale,
// computed in f32 exactly as ONNX Runtime's dequantization does.
absl::StatusOr<std::vector<float>> DequantizeNBits(const OnnxModel& model,
                                                   const WeightRef& weight);

}  // namespace llmpack::onnx_import

#endif  // LLMPACK_ONNX_IMPORT_NBITS_H_
