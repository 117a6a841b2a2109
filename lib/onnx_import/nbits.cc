#include "onnx_import/nbits.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "llmpack/status_macros.h"

namespace llmpack::onnx_import {
namespace {

struct Layout {
  int64_t rows = 0, cols = 0, blocks = 0, blob = 0, zp_row_bytes = 0;
};

Layout LayoutOf(const WeightRef& w) {
  const NBitsWeight& q = *w.nbits;
  Layout l;
  l.rows = w.shape[0];
  l.cols = w.shape[1];
  l.blocks = (l.cols + q.block_size - 1) / q.block_size;
  l.blob = q.block_size * q.bits / 8;
  l.zp_row_bytes = (l.blocks * q.bits + 7) / 8;
  return l;
}

bool IsFloat(int32_t t) {
  return t == onnx::TensorProto::FLOAT || t == onnx::TensorProto::FLOAT16 ||
         t == onnx::TensorProto::BFLOAT16;
}

// Code number `i` of a packed byte array (bits 4: low nibble first).
int Code(const uint8_t* bytes, int64_t i, int64_t bits) {
  if (bits == 8) return bytes[i];
  const uint8_t b = bytes[i / 2];
  return (i % 2 == 0) ? (b & 0x0F) : (b >> 4);
}

// The first scale (index into [N, blocks]) that does not survive a round
// trip through a 2-byte scale type, or -1 when all do.
int64_t FirstInexactScale(const std::vector<double>& scales, DType dtype) {
  for (size_t i = 0; i < scales.size(); ++i) {
    const float f = static_cast<float>(scales[i]);
    const float back =
        dtype == DType::kF16 ? F16ToF32(F32ToF16(f)) : BF16ToF32(F32ToBF16(f));
    if (static_cast<double>(f) != scales[i] || !(back == f)) {
      return static_cast<int64_t>(i);
    }
  }
  return -1;
}

}  // namespace

// MatMulNBits(A, B, scales[, zero_points[, g_idx[, bias]]]) with attributes
// K, N, bits, block_size; B is already [N = out, K = in] row by row.
absl::StatusOr<WeightRef> ResolveNBitsWeight(const Graph& g,
                                             const onnx::NodeProto& n) {
  const OnnxModel& m = g.model();
  const int64_t k = IntAttr(n, "K", 0), out = IntAttr(n, "N", 0);
  NBitsWeight q{n.name(), n.input_size() > 2 ? n.input(2) : "",
                n.input_size() > 3 ? n.input(3) : "", IntAttr(n, "bits", 4),
                IntAttr(n, "block_size", 0)};
  const bool g_idx = n.input_size() > 4 && !n.input(4).empty();
  std::vector<std::string> bad;
  if (k <= 0 || out <= 0) bad.push_back("K and N attributes must be positive");
  if (q.bits != 4 && q.bits != 8) {
    bad.push_back(absl::StrCat("bits ", q.bits, " (supported: 4, 8)"));
  }
  if (q.block_size < 16 || (q.block_size & (q.block_size - 1)) != 0) {
    bad.push_back(absl::StrCat("block_size ", q.block_size,
                               " (must be a power of two >= 16)"));
  }
  if (g_idx) bad.push_back("g_idx (act-order) is not supported");
  for (const std::string& c : {n.input(1), q.scales, q.zero_points}) {
    if (!c.empty() && !m.FindConstant(g.SkipCastsBackward(c))) {
      bad.push_back(absl::StrCat("input '", c, "' is not a constant"));
    }
  }
  if (q.scales.empty()) bad.push_back("no scales input");
  if (!bad.empty()) {
    return absl::UnimplementedError(absl::StrCat(m.path().string(), ": ",
                                                 Graph::Describe(n), ": ",
                                                 absl::StrJoin(bad, "; ")));
  }
  q.scales = g.SkipCastsBackward(q.scales);
  if (!q.zero_points.empty()) {
    q.zero_points = g.SkipCastsBackward(q.zero_points);
  }
  return WeightRef{g.SkipCastsBackward(n.input(1)), false, {out, k}, q};
}

absl::Status ValidateNBits(const OnnxModel& model, const WeightRef& w) {
  const NBitsWeight& q = *w.nbits;
  const Layout l = LayoutOf(w);
  const std::string where = absl::StrCat(model.path().string(), ": node '",
                                         q.node, "' (MatMulNBits)");
  auto check = [&](const std::string& what, const std::string& value,
                   bool type_ok, const char* types,
                   int64_t elements) -> absl::Status {
    const onnx::TensorProto* t = model.FindConstant(value);
    int64_t n = 1;
    for (int64_t d : t->dims()) n *= d;
    if (!type_ok) {
      return absl::UnimplementedError(
          absl::StrCat(where, ": ", what, " '", value, "' is ",
                       OnnxTypeName(t->data_type()), ", expected ", types));
    }
    if (n != elements) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": ", what, " '", value, "' has ", n, " elements, expected ",
          elements, " for N ", l.rows, ", K ", l.cols, ", bits ", q.bits,
          ", block_size ", q.block_size));
    }
    return absl::OkStatus();
  };
  const int32_t b_type = model.FindConstant(w.value)->data_type();
  RETURN_IF_ERROR(check("B", w.value, b_type == onnx::TensorProto::UINT8,
                        "UINT8", l.rows * l.blocks * l.blob));
  const int32_t s_type = model.FindConstant(q.scales)->data_type();
  RETURN_IF_ERROR(check("scales", q.scales, IsFloat(s_type),
                        "FLOAT/FLOAT16/BFLOAT16", l.rows * l.blocks));
  if (!q.zero_points.empty()) {
    const int32_t z = model.FindConstant(q.zero_points)->data_type();
    const bool packed = z == onnx::TensorProto::UINT8;
    RETURN_IF_ERROR(
        check("zero_points", q.zero_points, packed || IsFloat(z),
              "UINT8 or the scales' float type",
              packed ? l.rows * l.zp_row_bytes : l.rows * l.blocks));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<float>> DequantizeNBits(const OnnxModel& model,
                                                   const WeightRef& w) {
  RETURN_IF_ERROR(ValidateNBits(model, w));
  const NBitsWeight& q = *w.nbits;
  const Layout l = LayoutOf(w);
  ASSIGN_OR_RETURN(ConstantData codes, model.Data(w.value));
  ASSIGN_OR_RETURN(std::vector<double> scales, model.FloatValues(q.scales));
  std::vector<float> zeros(l.rows * l.blocks,
                           static_cast<float>(1 << (q.bits - 1)));
  if (!q.zero_points.empty()) {
    ASSIGN_OR_RETURN(ConstantData zp, model.Data(q.zero_points));
    if (zp.onnx_type == onnx::TensorProto::UINT8) {
      for (int64_t r = 0; r < l.rows; ++r) {
        for (int64_t b = 0; b < l.blocks; ++b) {
          zeros[r * l.blocks + b] =
              Code(zp.bytes.data() + r * l.zp_row_bytes, b, q.bits);
        }
      }
    } else {
      ASSIGN_OR_RETURN(std::vector<double> z, model.FloatValues(q.zero_points));
      for (size_t i = 0; i < z.size(); ++i) zeros[i] = static_cast<float>(z[i]);
    }
  }
  std::vector<float> out(l.rows * l.cols);
  for (int64_t r = 0; r < l.rows; ++r) {
    for (int64_t b = 0; b < l.blocks; ++b) {
      const uint8_t* blob = codes.bytes.data() + (r * l.blocks + b) * l.blob;
      const float scale = static_cast<float>(scales[r * l.blocks + b]);
      const float zero = zeros[r * l.blocks + b];
      for (int64_t j = 0; j < q.block_size; ++j) {
        const int64_t c = b * q.block_size + j;
        if (c >= l.cols) break;  // the last block is padded
        out[r * l.cols + c] =
            (static_cast<float>(Code(blob, j, q.bits)) - zero) * scale;
      }
    }
  }
  return out;
}

absl::StatusOr<quant::QuantFormat> MapNBitsToQ4(const OnnxModel& model,
                                                const WeightRef& w) {
  const NBitsWeight& q = *w.nbits;
  const Layout l = LayoutOf(w);
  if (q.bits != 4) {
    return absl::FailedPreconditionError(
        absl::StrCat("bits is ", q.bits, "; only 4-bit codes map onto q4"));
  }
  quant::QuantFormat format;
  format.dtype = DType::kQ4;
  format.group_size = std::min(q.block_size, l.cols);
  format.zero_point = !q.zero_points.empty();
  if (format.zero_point) {
    const int32_t z = model.FindConstant(q.zero_points)->data_type();
    if (z != onnx::TensorProto::UINT8) {
      return absl::FailedPreconditionError(absl::StrCat(
          "zero points '", q.zero_points, "' are ", OnnxTypeName(z),
          "; q4 stores 4-bit integer zero points (uint8-packed in ONNX)"));
    }
  }
  const int32_t s_type = model.FindConstant(q.scales)->data_type();
  ASSIGN_OR_RETURN(std::vector<double> scales, model.FloatValues(q.scales));
  const int64_t bad_f16 = FirstInexactScale(scales, DType::kF16);
  if (s_type != onnx::TensorProto::BFLOAT16 && bad_f16 < 0) {
    format.scale_dtype = DType::kF16;
    return format;
  }
  const int64_t bad_bf16 = FirstInexactScale(scales, DType::kBF16);
  if (bad_bf16 < 0) {
    format.scale_dtype = DType::kBF16;
    return format;
  }
  auto where = [&](int64_t i) {
    return absl::StrCat("row ", i / l.blocks, " block ", i % l.blocks, " = ",
                        scales[i]);
  };
  return absl::FailedPreconditionError(
      absl::StrCat("scales '", q.scales, "' are not all exact in f16 (",
                   where(bad_f16), ") nor in bf16 (", where(bad_bf16), ")"));
}

absl::StatusOr<std::vector<uint8_t>> RepackNBitsAsQ4(
    const OnnxModel& model, const WeightRef& w,
    const quant::QuantFormat& format) {
  RETURN_IF_ERROR(ValidateNBits(model, w));
  const NBitsWeight& q = *w.nbits;
  const Layout l = LayoutOf(w);
  ASSIGN_OR_RETURN(quant::RowLayout row, quant::MakeRowLayout(format, l.cols));
  if (q.bits != 4 || row.groups != l.blocks) {
    return absl::InternalError(absl::StrCat(
        model.path().string(), ": node '", q.node,
        "' (MatMulNBits): q4 format does not match bits ", q.bits,
        ", block_size ", q.block_size, " (call MapNBitsToQ4 first)"));
  }
  ASSIGN_OR_RETURN(ConstantData codes, model.Data(w.value));
  ASSIGN_OR_RETURN(std::vector<double> scales, model.FloatValues(q.scales));
  ConstantData zp;
  if (format.zero_point) {
    ASSIGN_OR_RETURN(zp, model.Data(q.zero_points));
  }
  const int64_t code_bytes = row.scale_offset;  // ceil(K / 2)
  const int64_t zp_bytes = row.row_bytes - row.zp_offset;
  std::vector<uint8_t> out(static_cast<size_t>(l.rows * row.row_bytes));
  for (int64_t r = 0; r < l.rows; ++r) {
    uint8_t* dst = out.data() + r * row.row_bytes;
    // Block b's codes start at nibble b * block_size of the row (block_size
    // is even), so the row's first ceil(K / 2) bytes are the K codes, low
    // nibble first, as in q4; a code past K (odd K) is padding: zeroed.
    std::memcpy(dst, codes.bytes.data() + r * l.blocks * l.blob, code_bytes);
    if (l.cols % 2 == 1) dst[code_bytes - 1] &= 0x0F;
    for (int64_t b = 0; b < l.blocks; ++b) {
      const float s = static_cast<float>(scales[r * l.blocks + b]);
      const uint16_t bits =
          format.scale_dtype == DType::kF16 ? F32ToF16(s) : F32ToBF16(s);
      std::memcpy(dst + row.scale_offset + 2 * b, &bits, 2);
    }
    if (format.zero_point) {
      // Packed 4-bit zero points: ceil(blocks / 2) bytes per row, low
      // nibble first, in ONNX Runtime as in q4; an odd count's pad nibble
      // is zeroed.
      std::memcpy(dst + row.zp_offset, zp.bytes.data() + r * l.zp_row_bytes,
                  zp_bytes);
      if (l.blocks % 2 == 1) dst[row.row_bytes - 1] &= 0x0F;
    }
  }
  return out;
}

}  // namespace llmpack::onnx_import
