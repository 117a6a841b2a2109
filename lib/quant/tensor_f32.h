// Reading any package tensor (f32/f16/bf16 or q4/q8) as f32 values, for
// tools that re-quantize or compare tensors. Quantized tensors go through
// the reference codec (DequantizeRow), so the values are exactly what every
// reader computes.
//
// Thread safety: pure; safe to call concurrently on one reader.
#ifndef LLMPACK_QUANT_TENSOR_F32_H_
#define LLMPACK_QUANT_TENSOR_F32_H_

#include <vector>

#include "absl/status/statusor.h"
#include "llmpack/tensor_file.h"
#include "quant/codec.h"

namespace llmpack::quant {

// True for q4/q8 tensors.
bool IsQuantizedTensor(const TensorInfo& tensor);
// The QuantFormat recorded in a quantized tensor's directory entry.
QuantFormat FormatOfTensor(const TensorInfo& tensor);

// All elements of `tensor` as f32 (row-major). Fails, naming the file and
// tensor, when a quantized tensor's size does not match its layout.
absl::StatusOr<std::vector<float>> ReadTensorAsF32(
    const TensorFileReader& reader, const TensorInfo& tensor);

// Rows [first_row, first_row + count) of `tensor` (rows as
// TensorInfo::num_rows counts them) as f32 into out[count * cols], reading
// only those rows. `buffer` is scratch for the raw bytes, reused across calls
// (grown when too small, never shrunk).
absl::Status ReadRowsAsF32(const TensorFileReader& reader,
                           const TensorInfo& tensor, int64_t first_row,
                           int64_t count, std::vector<uint8_t>& buffer,
                           float* out);

}  // namespace llmpack::quant

#endif  // LLMPACK_QUANT_TENSOR_F32_H_
