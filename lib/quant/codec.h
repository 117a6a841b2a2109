// The scalar reference codec for q4/q8 tensors (formats/package_format.md,
// "Quantized tensors"): row layout, packing of codes/scales/zero points, and
// dequantization. The package writer, the runtime's reference kernels and the
// ONNX MatMulNBits import all go through these functions, so the same codes
// give the same bytes and the same floats on every machine.
//
// Thread safety: all functions are pure; RowLayout is a value type.
#ifndef LLMPACK_QUANT_CODEC_H_
#define LLMPACK_QUANT_CODEC_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "llmpack/dtype.h"

namespace llmpack::quant {

// How one tensor is quantized.
struct QuantFormat {
  DType dtype = DType::kQ4;          // kQ4 or kQ8
  int64_t group_size = 32;           // 1..cols; cols means per-row
  DType scale_dtype = DType::kF16;   // kF16 or kBF16
  bool zero_point = true;            // asymmetric (quant_flags bit 0)
};

// Byte layout of one row of `cols` elements.
struct RowLayout {
  QuantFormat format;
  int64_t cols = 0;
  int64_t groups = 0;        // ceil(cols / group_size)
  int64_t scale_offset = 0;  // == code bytes
  int64_t zp_offset = 0;     // == scale_offset + 2 * groups
  int64_t row_bytes = 0;

  // Elements in group j (the last group may be shorter).
  int64_t GroupLength(int64_t j) const;
  // Lowest and highest code: q4 0..15, q8 -128..127.
  int CodeMin() const;
  int CodeMax() const;
  // Zero point used when the format has none (q4 8, q8 0).
  int ImplicitZero() const;
};

// Validates the format (dtype, group size in 1..cols, scale dtype) and
// computes the layout. Errors name the offending field and value.
absl::StatusOr<RowLayout> MakeRowLayout(const QuantFormat& format,
                                        int64_t cols);

// One row's quantization parameters and codes, unpacked.
struct UnpackedRow {
  std::vector<int> codes;    // [cols], in CodeMin()..CodeMax()
  std::vector<float> scales; // [groups], exactly representable in scale_dtype
  std::vector<int> zeros;    // [groups], in CodeMin()..CodeMax()
};

// Rounds a scale to the layout's scale dtype (what will be stored).
float RoundScale(const RowLayout& layout, float scale);

// Packs codes, scales and zero points into `row` (row_bytes bytes). Codes and
// zero points must already be in range; scales are rounded to scale_dtype.
// Zero points are ignored when the format has none.
void PackRow(const RowLayout& layout, absl::Span<const int> codes,
             absl::Span<const float> scales, absl::Span<const int> zeros,
             uint8_t* row);
// The inverse of PackRow (zeros are the implicit zero when not stored).
UnpackedRow UnpackRow(const RowLayout& layout, const uint8_t* row);

// Group j's scale and zero point as stored in `row`.
float GroupScale(const RowLayout& layout, const uint8_t* row, int64_t j);
int GroupZero(const RowLayout& layout, const uint8_t* row, int64_t j);
// Element c's code as stored in `row`.
int CodeAt(const RowLayout& layout, const uint8_t* row, int64_t c);

// out[c] = f32(scale[j]) * float(code[c] - zero[j]): the one definition of a
// quantized row's value.
void DequantizeRow(const RowLayout& layout, const uint8_t* row, float* out);

}  // namespace llmpack::quant

#endif  // LLMPACK_QUANT_CODEC_H_
