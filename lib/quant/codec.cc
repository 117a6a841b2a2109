#include "quant/codec.h"

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace llmpack::quant {

int64_t RowLayout::GroupLength(int64_t j) const {
  const int64_t begin = j * format.group_size;
  const int64_t end = begin + format.group_size;
  return (end < cols ? end : cols) - begin;
}

int RowLayout::CodeMin() const { return format.dtype == DType::kQ4 ? 0 : -128; }
int RowLayout::CodeMax() const { return format.dtype == DType::kQ4 ? 15 : 127; }
int RowLayout::ImplicitZero() const {
  return format.dtype == DType::kQ4 ? format::kQ4SymmetricZero : 0;
}

absl::StatusOr<RowLayout> MakeRowLayout(const QuantFormat& format,
                                        int64_t cols) {
  if (format.dtype != DType::kQ4 && format.dtype != DType::kQ8) {
    return absl::InvalidArgumentError(absl::StrCat(
        "quantized dtype must be q4 or q8, found ", DTypeName(format.dtype)));
  }
  if (format.scale_dtype != DType::kF16 && format.scale_dtype != DType::kBF16) {
    return absl::InvalidArgumentError(
        absl::StrCat("scale dtype must be f16 or bf16, found ",
                     DTypeName(format.scale_dtype)));
  }
  if (cols < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("a quantized row needs at least 1 column, found ", cols));
  }
  if (format.group_size < 1 || format.group_size > cols) {
    return absl::InvalidArgumentError(
        absl::StrCat("group size must be in 1..", cols,
                     " (the row length), found ", format.group_size));
  }
  RowLayout layout;
  layout.format = format;
  layout.cols = cols;
  layout.groups = static_cast<int64_t>(format::QuantGroupCount(
      static_cast<uint64_t>(cols), static_cast<uint64_t>(format.group_size)));
  const bool q4 = format.dtype == DType::kQ4;
  layout.scale_offset = q4 ? (cols + 1) / 2 : cols;
  layout.zp_offset = layout.scale_offset + 2 * layout.groups;
  layout.row_bytes = static_cast<int64_t>(format::QuantRowBytes(
      format.dtype, static_cast<uint64_t>(cols),
      static_cast<uint64_t>(format.group_size), format.zero_point));
  return layout;
}

float RoundScale(const RowLayout& layout, float scale) {
  return layout.format.scale_dtype == DType::kF16 ? F16ToF32(F32ToF16(scale))
                                                  : BF16ToF32(F32ToBF16(scale));
}

namespace {

void SetNibble(uint8_t* bytes, int64_t i, int value) {
  uint8_t& b = bytes[i / 2];
  if (i % 2 == 0) {
    b = static_cast<uint8_t>((b & 0xF0u) | (value & 0x0F));
  } else {
    b = static_cast<uint8_t>((b & 0x0Fu) | ((value & 0x0F) << 4));
  }
}

int GetNibble(const uint8_t* bytes, int64_t i) {
  const uint8_t b = bytes[i / 2];
  return i % 2 == 0 ? (b & 0x0F) : (b >> 4);
}

}  // namespace

void PackRow(const RowLayout& layout, absl::Span<const int> codes,
             absl::Span<const float> scales, absl::Span<const int> zeros,
             uint8_t* row) {
  std::memset(row, 0, static_cast<size_t>(layout.row_bytes));
  const bool q4 = layout.format.dtype == DType::kQ4;
  if (q4) {
    int64_t c = 0;
    for (; c + 1 < layout.cols; c += 2) {
      row[c / 2] = static_cast<uint8_t>((codes[c] & 0x0F) |
                                        ((codes[c + 1] & 0x0F) << 4));
    }
    if (c < layout.cols) SetNibble(row, c, codes[c]);
  } else {
    for (int64_t c = 0; c < layout.cols; ++c) {
      row[c] = static_cast<uint8_t>(static_cast<int8_t>(codes[c]));
    }
  }
  for (int64_t j = 0; j < layout.groups; ++j) {
    const uint16_t bits = layout.format.scale_dtype == DType::kF16
                              ? F32ToF16(scales[j])
                              : F32ToBF16(scales[j]);
    std::memcpy(row + layout.scale_offset + 2 * j, &bits, 2);
  }
  if (!layout.format.zero_point) return;
  uint8_t* zp = row + layout.zp_offset;
  for (int64_t j = 0; j < layout.groups; ++j) {
    if (q4) {
      SetNibble(zp, j, zeros[j]);
    } else {
      zp[j] = static_cast<uint8_t>(static_cast<int8_t>(zeros[j]));
    }
  }
}

float GroupScale(const RowLayout& layout, const uint8_t* row, int64_t j) {
  uint16_t bits;
  std::memcpy(&bits, row + layout.scale_offset + 2 * j, 2);
  return layout.format.scale_dtype == DType::kF16 ? F16ToF32(bits)
                                                  : BF16ToF32(bits);
}

int GroupZero(const RowLayout& layout, const uint8_t* row, int64_t j) {
  if (!layout.format.zero_point) return layout.ImplicitZero();
  const uint8_t* zp = row + layout.zp_offset;
  return layout.format.dtype == DType::kQ4 ? GetNibble(zp, j)
                                           : static_cast<int8_t>(zp[j]);
}

int CodeAt(const RowLayout& layout, const uint8_t* row, int64_t c) {
  return layout.format.dtype == DType::kQ4 ? GetNibble(row, c)
                                           : static_cast<int8_t>(row[c]);
}

UnpackedRow UnpackRow(const RowLayout& layout, const uint8_t* row) {
  UnpackedRow out;
  out.codes.resize(static_cast<size_t>(layout.cols));
  out.scales.resize(static_cast<size_t>(layout.groups));
  out.zeros.resize(static_cast<size_t>(layout.groups));
  for (int64_t c = 0; c < layout.cols; ++c)
    out.codes[c] = CodeAt(layout, row, c);
  for (int64_t j = 0; j < layout.groups; ++j) {
    out.scales[j] = GroupScale(layout, row, j);
    out.zeros[j] = GroupZero(layout, row, j);
  }
  return out;
}

void DequantizeRow(const RowLayout& layout, const uint8_t* row, float* out) {
  // Decodes whole bytes rather than calling CodeAt per element; the
  // arithmetic (scale * float(code - zero)) is the same, so the floats are
  // bit-identical.
  const bool q4 = layout.format.dtype == DType::kQ4;
  for (int64_t j = 0; j < layout.groups; ++j) {
    const float scale = GroupScale(layout, row, j);
    const int zero = GroupZero(layout, row, j);
    int64_t c = j * layout.format.group_size;
    const int64_t end = c + layout.GroupLength(j);
    if (!q4) {
      for (; c < end; ++c) {
        out[c] = scale * static_cast<float>(static_cast<int8_t>(row[c]) - zero);
      }
      continue;
    }
    // A group of odd size may start on a high nibble.
    if (c % 2 == 1 && c < end) {
      out[c] = scale * static_cast<float>((row[c / 2] >> 4) - zero);
      ++c;
    }
    for (; c + 1 < end; c += 2) {
      const uint8_t b = row[c / 2];
      out[c] = scale * static_cast<float>((b & 0x0F) - zero);
      out[c + 1] = scale * static_cast<float>((b >> 4) - zero);
    }
    if (c < end)
      out[c] = scale * static_cast<float>((row[c / 2] & 0x0F) - zero);
  }
}

}  // namespace llmpack::quant
