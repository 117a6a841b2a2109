#include "runtime/quant_matmul.h"

#include <algorithm>
#include <cmath>

namespace llmpack::runtime {
namespace {

constexpr int64_t kBlock = kActivationBlock;
constexpr int64_t kSuperBlocks = 4;  // blocks per q4-order superblock

}  // namespace

int64_t ActivationCodeIndex(bool q4_order, int64_t blocks, int64_t c) {
  if (!q4_order) return c;
  const int64_t b = c / kBlock;
  const int64_t i = c % kBlock;
  const int64_t s = b / kSuperBlocks;
  const int64_t k = b % kSuperBlocks;
  const int64_t m = std::min(kSuperBlocks, blocks - s * kSuperBlocks);
  const int64_t half = kBlock / 2;
  const int64_t base = s * kSuperBlocks * kBlock;
  return base + (i % 2 == 0 ? half * k : half * (m + k)) + i / 2;
}

BlockPlacement PlaceBlock(const QuantizedActivations& a, int64_t b) {
  const int64_t begin = b * kBlock;
  if (!a.q4_order) return {begin, begin + 1, 2};
  return {ActivationCodeIndex(true, a.blocks, begin),
          ActivationCodeIndex(true, a.blocks, begin + 1), 1};
}

void StartQuantizedActivations(int64_t tokens, int64_t cols,
                               const WeightMatrix& w,
                               QuantizedActivations* out) {
  const int64_t blocks = (cols + kBlock - 1) / kBlock;
  out->tokens = tokens;
  out->cols = cols;
  out->blocks = blocks;
  out->q4_order = w.dtype == DType::kQ4;
  const size_t codes = static_cast<size_t>(tokens * blocks * kBlock);
  const size_t scale_count = static_cast<size_t>(
      tokens * blocks + QuantizedActivations::kScalePadding);
  out->high.resize(codes);
  out->low.resize(codes);
  out->scales.assign(scale_count, 0.0f);
  out->scaled_sums.assign(scale_count, 0.0f);
}

void QuantizeActivationBlock(const float* x, int64_t t, int64_t b,
                             QuantizedActivations* out) {
  const int64_t begin = b * kBlock;
  const int64_t n = std::min(out->cols - begin, kBlock);
  const float* xb = x + t * out->cols + begin;
  float amax = 0.0f;
  for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::abs(xb[i]));
  const float max_code = static_cast<float>(kActivationCodeMax);
  const float scale = amax / max_code;
  const float inv = amax > 0.0f ? max_code / amax : 0.0f;
  // Codes of the block in natural order; zero past the row's end.
  int32_t codes[kBlock] = {};
  int32_t sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    codes[i] = static_cast<int32_t>(std::nearbyint(xb[i] * inv));
    sum += codes[i];
  }
  const BlockPlacement place = PlaceBlock(*out, b);
  int8_t* high = out->high.data() + t * out->blocks * kBlock;
  int8_t* low = out->low.data() + t * out->blocks * kBlock;
  for (int64_t j = 0; j < kBlock / 2; ++j) {
    const int32_t e = codes[2 * j], o = codes[2 * j + 1];
    // Arithmetic shift: floor division by 128.
    high[place.even + j * place.step] = static_cast<int8_t>(e >> 7);
    low[place.even + j * place.step] = static_cast<int8_t>(e & 127);
    high[place.odd + j * place.step] = static_cast<int8_t>(o >> 7);
    low[place.odd + j * place.step] = static_cast<int8_t>(o & 127);
  }
  out->scales[t * out->blocks + b] = scale;
  out->scaled_sums[t * out->blocks + b] = scale * static_cast<float>(sum);
}

void QuantizeActivations(const float* x, int64_t tokens, int64_t cols,
                         const WeightMatrix& w, QuantizedActivations* out) {
  StartQuantizedActivations(tokens, cols, w, out);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t b = 0; b < out->blocks; ++b) {
      QuantizeActivationBlock(x, t, b, out);
    }
  }
}

float QuantizedDotReference(const QuantizedActivations& a, int64_t token,
                            const quant::RowLayout& layout, const uint8_t* row,
                            int64_t block_begin, int64_t block_end) {
  const float* scales = a.Scales(token);
  const int64_t group = layout.format.group_size;
  float sum = 0.0f;
  for (int64_t b = block_begin; b < block_end; ++b) {
    const int64_t end = std::min(layout.cols, (b + 1) * kBlock);
    int64_t c = b * kBlock;
    while (c < end) {
      const int64_t g = c / group;
      const int64_t segment_end = std::min(end, (g + 1) * group);
      const int zero = quant::GroupZero(layout, row, g);
      int32_t d = 0;
      for (; c < segment_end; ++c) {
        d += (quant::CodeAt(layout, row, c) - zero) *
             a.Code(token, ActivationCodeIndex(a.q4_order, a.blocks, c));
      }
      sum += static_cast<float>(d) *
             (quant::GroupScale(layout, row, g) * scales[b]);
    }
  }
  return sum;
}

void QuantizedMatMulReference(const QuantizedActivations& a,
                              const WeightMatrix& w, int64_t row_begin,
                              int64_t row_end, float* out, int64_t out_stride) {
  for (int64_t r = row_begin; r < row_end; ++r) {
    for (int64_t t = 0; t < a.tokens; ++t) {
      out[t * out_stride + r] =
          QuantizedDotReference(a, t, w.layout, w.Row(r), 0, a.blocks);
    }
  }
}

}  // namespace llmpack::runtime
