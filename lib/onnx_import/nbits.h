// Reads ONNX Runtime MatMulNBits weights (com.microsoft): B is uint8
// [N][blocks][block_size * bits / 8], codes low nibble first along K; one
// scale per (row, block); zero points packed the same way (uint8) or stored
// as floats, 2^(bits-1) when absent. Pure functions; thread-safe.
#ifndef LLMPACK_ONNX_IMPORT_NBITS_H_
#define LLMPACK_ONNX_IMPORT_NBITS_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "onnx_import/graph.h"
#include "onnx_import/graph_analysis.h"
#include "onnx_import/onnx_model.h"
#include "quant/codec.h"

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

// The package q4 format a 4-bit MatMulNBits weight maps onto without
// dequantizing (formats/package_format.md, "Quantized tensors"): group size
// = block_size (or K when the one block is longer than a row, which ONNX
// Runtime pads), uint8-packed zero points -> asymmetric, no zero points ->
// symmetric (both use 8), scales f16 when every scale is exactly an f16
// (always for FLOAT16 scales), else bf16 when every scale is exactly a bf16.
// Otherwise FailedPrecondition whose message says why (8 bits, float zero
// points, the first scale exact in neither type); the caller dequantizes.
// Expects a weight that passed ValidateNBits.
absl::StatusOr<quant::QuantFormat> MapNBitsToQ4(const OnnxModel& model,
                                                const WeightRef& weight);

// The weight's codes, scales and zero points in the package's q4 row layout
// for `format` (from MapNBitsToQ4), [N] rows of quant::RowLayout::row_bytes:
// byte for byte what quant::PackRow writes for the same codes, scales and
// zeros. The padding of ONNX Runtime's last block is dropped.
absl::StatusOr<std::vector<uint8_t>> RepackNBitsAsQ4(
    const OnnxModel& model, const WeightRef& weight,
    const quant::QuantFormat& format);

}  // namespace llmpack::onnx_import

#endif  // LLMPACK_ONNX_IMPORT_NBITS_H_
