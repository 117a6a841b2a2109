#include "runtime/quant_matmul.h"

#include <algorithm>
#include <cmath>
#include <new>

#include "runtime/aligned_bytes.h"

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
  out->codes.resize(codes);
  out->scales.assign(scale_count, 0.0f);
  out->scaled_sums.assign(scale_count, 0.0f);
}

float QuantizeBlockCodes(const float* x, int64_t n, int32_t codes[kBlock],
                         int32_t* sum) {
  float amax = 0.0f;
  for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::abs(x[i]));
  const float max_code = static_cast<float>(kActivationCodeMax);
  const float inv = amax > 0.0f ? max_code / amax : 0.0f;
  *sum = 0;
  for (int64_t i = 0; i < kBlock; ++i) {
    codes[i] = i < n ? static_cast<int32_t>(std::nearbyint(x[i] * inv)) : 0;
    *sum += codes[i];
  }
  return amax / max_code;
}

void QuantizeActivationBlock(const float* x, int64_t t, int64_t b,
                             QuantizedActivations* out) {
  const int64_t begin = b * kBlock;
  const int64_t n = std::min(out->cols - begin, kBlock);
  // Codes of the block in natural order; zero past the row's end.
  int32_t codes[kBlock];
  int32_t sum;
  const float scale =
      QuantizeBlockCodes(x + t * out->cols + begin, n, codes, &sum);
  const BlockPlacement place = PlaceBlock(*out, b);
  int8_t* high = out->high.data() + t * out->blocks * kBlock;
  int8_t* low = out->low.data() + t * out->blocks * kBlock;
  int16_t* whole = out->codes.data() + t * out->blocks * kBlock;
  for (int64_t j = 0; j < kBlock / 2; ++j) {
    const int32_t e = codes[2 * j], o = codes[2 * j + 1];
    whole[place.even + j * place.step] = static_cast<int16_t>(e);
    whole[place.odd + j * place.step] = static_cast<int16_t>(o);
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

bool PanelMatMulApplies(const WeightMatrix& w, int64_t tokens) {
  return w.dtype == DType::kQ4 && tokens >= kPanelMinTokens &&
         w.cols % kBlock == 0 && w.layout.format.group_size % kBlock == 0;
}

void StartActivationPanels(int64_t tokens, int64_t cols,
                           ActivationPanels* out) {
  constexpr int64_t kTokens = ActivationPanels::kTokens;
  out->tokens = tokens;
  out->cols = cols;
  out->blocks = cols / kBlock;
  out->panels = (tokens + kTokens - 1) / kTokens;
  const size_t bytes = static_cast<size_t>(out->panels * out->blocks *
                                           ActivationPanels::kBlockBytes);
  if (out->codes_capacity < bytes) {
    out->codes = AllocateAligned(bytes, 64);
    if (out->codes == nullptr) throw std::bad_alloc();
    out->codes_capacity = bytes;
  }
  const size_t count = static_cast<size_t>(out->panels * out->blocks * kTokens);
  out->scales.assign(count, 0.0f);
  // Padding tokens of the last panel: zero codes (plane 0 holds high + 128).
  const int64_t real = tokens - (out->panels - 1) * kTokens;
  if (real == kTokens) return;
  for (int64_t b = 0; b < out->blocks; ++b) {
    uint8_t* block = out->codes.get() + ((out->panels - 1) * out->blocks + b) *
                                            ActivationPanels::kBlockBytes;
    for (int64_t plane = 0; plane < 2; ++plane) {
      for (int64_t k = 0; k < 8; ++k) {
        uint8_t* quad = block + plane * 512 + k * 64;
        std::fill(quad + 4 * real, quad + 64, plane == 0 ? 128 : 0);
      }
    }
  }
}

void QuantizeActivationPanels(const float* x, int64_t tokens, int64_t cols,
                              ActivationPanels* out) {
  constexpr int64_t kTokens = ActivationPanels::kTokens;
  StartActivationPanels(tokens, cols, out);
  for (int64_t t = 0; t < tokens; ++t) {
    const int64_t p = t / kTokens, i = t % kTokens;
    for (int64_t b = 0; b < out->blocks; ++b) {
      int32_t codes[kBlock];
      int32_t sum;  // unused: the weights carry the zero point
      const float scale =
          QuantizeBlockCodes(x + t * cols + b * kBlock, kBlock, codes, &sum);
      uint8_t* block = out->codes.get() +
                       (p * out->blocks + b) * ActivationPanels::kBlockBytes;
      for (int64_t c = 0; c < kBlock; ++c) {
        const int64_t at = (c / 4) * 64 + 4 * i + c % 4;
        block[at] = static_cast<uint8_t>((codes[c] >> 7) + 128);
        block[512 + at] = static_cast<uint8_t>(codes[c] & 127);
      }
      const int64_t s = (p * out->blocks + b) * kTokens + i;
      out->scales[s] = scale;
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
