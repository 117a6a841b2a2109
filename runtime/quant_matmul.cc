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

namespace {

// lrint(v) for |v| <= 2^22 in the default rounding mode (to nearest, ties
// to even): adding and removing 1.5 * 2^23 leaves the rounded integer, in a
// form compilers vectorize (without -ffast-math they keep the order).
inline float RoundToNearestEven(float v) {
  constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23
  return (v + kMagic) - kMagic;
}

}  // namespace

void QuantizeActivations(const float* x, int64_t tokens, int64_t cols,
                         const WeightMatrix& w, QuantizedActivations* out) {
  const int64_t blocks = (cols + kBlock - 1) / kBlock;
  out->tokens = tokens;
  out->cols = cols;
  out->blocks = blocks;
  out->q4_order = w.dtype == DType::kQ4;
  const int64_t stride = blocks * kBlock;
  const size_t scale_count = static_cast<size_t>(
      tokens * blocks + QuantizedActivations::kScalePadding);
  out->high.resize(static_cast<size_t>(tokens * stride));
  out->low.resize(static_cast<size_t>(tokens * stride));
  out->scales.assign(scale_count, 0.0f);
  out->scaled_sums.assign(scale_count, 0.0f);
  const float max_code = static_cast<float>(kActivationCodeMax);
  for (int64_t t = 0; t < tokens; ++t) {
    const float* xt = x + t * cols;
    int8_t* high = out->high.data() + t * stride;
    int8_t* low = out->low.data() + t * stride;
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t begin = b * kBlock;
      const int64_t n = std::min(cols - begin, kBlock);
      float amax = 0.0f;
      for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::abs(xt[begin + i]));
      const float scale = amax / max_code;
      const float inv = amax > 0.0f ? max_code / amax : 0.0f;
      // Codes of the block in natural order; zero past the row's end.
      int32_t codes[kBlock] = {};
      int32_t sum = 0;
      for (int64_t i = 0; i < n; ++i) {
        codes[i] = static_cast<int32_t>(RoundToNearestEven(xt[begin + i] * inv));
        sum += codes[i];
      }
      // Where the block's elements go: natural order, or its even and odd
      // halves (ActivationCodeIndex).
      int64_t even = begin, odd = begin + 1, step = 2;
      if (out->q4_order) {
        even = ActivationCodeIndex(true, blocks, begin);
        odd = ActivationCodeIndex(true, blocks, begin + 1);
        step = 1;
      }
      for (int64_t j = 0; j < kBlock / 2; ++j) {
        const int32_t e = codes[2 * j], o = codes[2 * j + 1];
        // Arithmetic shift: floor division by 128.
        high[even + j * step] = static_cast<int8_t>(e >> 7);
        low[even + j * step] = static_cast<int8_t>(e & 127);
        high[odd + j * step] = static_cast<int8_t>(o >> 7);
        low[odd + j * step] = static_cast<int8_t>(o & 127);
      }
      out->scales[t * blocks + b] = scale;
      out->scaled_sums[t * blocks + b] = scale * static_cast<float>(sum);
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
