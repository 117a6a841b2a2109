#include "quant/tensor_f32.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "llmpack/status_macros.h"

namespace llmpack::quant {

bool IsQuantizedTensor(const TensorInfo& t) {
  return t.dtype == DType::kQ4 || t.dtype == DType::kQ8;
}

QuantFormat FormatOfTensor(const TensorInfo& t) {
  return {t.dtype, static_cast<int64_t>(t.group_size),
          static_cast<DType>(t.scale_dtype),
          (t.quant_flags & format::kQuantFlagZeroPoint) != 0};
}

absl::StatusOr<std::vector<float>> ReadTensorAsF32(
    const TensorFileReader& reader, const TensorInfo& t) {
  std::vector<uint8_t> bytes(t.size_bytes);
  RETURN_IF_ERROR(reader.ReadTensor(t, absl::MakeSpan(bytes),
                                    /*verify_checksum=*/false));
  std::vector<float> out(static_cast<size_t>(t.num_elements()));
  if (!IsQuantizedTensor(t)) {
    ToF32(t.dtype, bytes.data(), out.data(), out.size());
    return out;
  }
  const int64_t cols = t.shape.back();
  absl::StatusOr<RowLayout> layout = MakeRowLayout(FormatOfTensor(t), cols);
  if (!layout.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(reader.path().string(),
                                                   ": tensor ", t.name, ": ",
                                                   layout.status().message()));
  }
  const int64_t rows = t.num_elements() / cols;
  if (static_cast<uint64_t>(rows * layout->row_bytes) != t.size_bytes) {
    return absl::DataLossError(absl::StrCat(
        reader.path().string(), ": tensor ", t.name, " has ", t.size_bytes,
        " bytes, expected ", rows * layout->row_bytes, " for its ",
        DTypeName(t.dtype), " layout"));
  }
  for (int64_t r = 0; r < rows; ++r) {
    DequantizeRow(*layout, bytes.data() + r * layout->row_bytes,
                  out.data() + r * cols);
  }
  return out;
}

absl::Status ReadRowsAsF32(const TensorFileReader& reader, const TensorInfo& t,
                           int64_t first_row, int64_t count,
                           std::vector<uint8_t>& buffer, float* out) {
  const int64_t cols = t.shape.empty() ? 0 : t.shape.back();
  const size_t bytes = static_cast<size_t>(t.row_bytes() * count);
  if (buffer.size() < bytes) buffer.resize(bytes);
  RETURN_IF_ERROR(reader.ReadRows(t, first_row, count,
                                  absl::MakeSpan(buffer.data(), bytes)));
  if (!IsQuantizedTensor(t)) {
    ToF32(t.dtype, buffer.data(), out, static_cast<size_t>(count * cols));
    return absl::OkStatus();
  }
  absl::StatusOr<RowLayout> layout = MakeRowLayout(FormatOfTensor(t), cols);
  if (!layout.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(reader.path().string(),
                                                   ": tensor ", t.name, ": ",
                                                   layout.status().message()));
  }
  for (int64_t r = 0; r < count; ++r) {
    DequantizeRow(*layout, buffer.data() + r * layout->row_bytes,
                  out + r * cols);
  }
  return absl::OkStatus();
}

}  // namespace llmpack::quant
