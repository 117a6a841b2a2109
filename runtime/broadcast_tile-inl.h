// The register tile both attention kernels are made of (kernels_hwy.cc for
// decode, kernels_attention_hwy.cc for prompts): H broadcast scalars times C
// loaded vectors, one multiply-add chain per lane. Decode and prompts reach
// the same per-row arithmetic through it, so they agree bit for bit.
//
// Highway per-target header: include it after hwy/highway.h inside a file
// compiled once per target (HWY_TARGET_INCLUDE); the toggling guard below is
// Highway's idiom for that. Pure functions, thread-safe.
#if defined(LLMPACK_RUNTIME_BROADCAST_TILE_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef LLMPACK_RUNTIME_BROADCAST_TILE_INL_H_
#undef LLMPACK_RUNTIME_BROADCAST_TILE_INL_H_
#else
#define LLMPACK_RUNTIME_BROADCAST_TILE_INL_H_
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "hwy/highway.h"

// The tile's accumulators are named variables (vectors of sizeless types,
// Arm SVE, cannot live in arrays); these visit every name of the largest.
// clang-format off
#ifndef LLMPACK_BROADCAST_TILE_MACROS
#define LLMPACK_BROADCAST_TILE_MACROS
#define LLMPACK_BT_ROW(X, h) X(h, 0) X(h, 1) X(h, 2) X(h, 3)
#define LLMPACK_BT_TILE(X) LLMPACK_BT_ROW(X, 0) LLMPACK_BT_ROW(X, 1) \
  LLMPACK_BT_ROW(X, 2) LLMPACK_BT_ROW(X, 3) LLMPACK_BT_ROW(X, 4)
#define LLMPACK_BT_FOUR(X) X(0) X(1) X(2) X(3)
#define LLMPACK_BT_FIVE(X) X(0) X(1) X(2) X(3) X(4)
#endif
// clang-format on

HWY_BEFORE_NAMESPACE();
namespace llmpack::runtime {
namespace HWY_NAMESPACE {
namespace bt = hwy::HWY_NAMESPACE;

// Largest tile: 5 broadcasts x 4 vectors (20 accumulators).
inline constexpr int kMaxTileBroadcasts = 5;
inline constexpr int kMaxTileVectors = 4;

// For h < H, c < C and lanes l:
//   out[(h * C + c) * lanes + l] = sum over i < count, in order, of
//       a[i * a_step + h * a_stride] * b[i * b_step + c * lanes + l],
// each term added by one multiply-add.
template <int H, int C>
HWY_INLINE void BroadcastTile(int64_t count, const float* a, int64_t a_step,
                              int64_t a_stride, const float* b, int64_t b_step,
                              float* HWY_RESTRICT out) {
  static_assert(H >= 1 && H <= kMaxTileBroadcasts && C >= 1 &&
                C <= kMaxTileVectors);
  const bt::ScalableTag<float> df;
  const int64_t lanes = static_cast<int64_t>(bt::Lanes(df));
  const auto zero = bt::Zero(df);
#define LLMPACK_DECLARE(h, c) HWY_MAYBE_UNUSED auto acc##h##c = zero;
  LLMPACK_BT_TILE(LLMPACK_DECLARE)
#undef LLMPACK_DECLARE
  for (int64_t i = 0; i < count; ++i) {
    const float* bi = b + i * b_step;
    const float* ai = a + i * a_step;
#define LLMPACK_LOAD_VECTOR(c)       \
  HWY_MAYBE_UNUSED const auto v##c = \
      c < C ? bt::LoadU(df, bi + c * lanes) : zero;
    LLMPACK_BT_FOUR(LLMPACK_LOAD_VECTOR)
#undef LLMPACK_LOAD_VECTOR
#define LLMPACK_BROADCAST(h)         \
  HWY_MAYBE_UNUSED const auto s##h = \
      h < H ? bt::Set(df, ai[h * a_stride]) : zero;
    LLMPACK_BT_FIVE(LLMPACK_BROADCAST)
#undef LLMPACK_BROADCAST
#define LLMPACK_FMA(h, c) \
  if constexpr (h < H && c < C) acc##h##c = bt::MulAdd(s##h, v##c, acc##h##c);
    LLMPACK_BT_TILE(LLMPACK_FMA)
#undef LLMPACK_FMA
  }
#define LLMPACK_STORE(h, c)     \
  if constexpr (h < H && c < C) \
    bt::StoreU(acc##h##c, df, out + (h * C + c) * lanes);
  LLMPACK_BT_TILE(LLMPACK_STORE)
#undef LLMPACK_STORE
}

// For h < H and columns col < width:
//   out[h][col] = sum over i < count, in order, of
//       a[i * a_step + h * a_stride] * b[i * b_step + col],
// four vectors of columns at a time through BroadcastTile, then one, then
// the columns past the last whole vector with std::fma. Both attention
// kernels compute their outputs (probabilities times value rows) here.
template <int H>
HWY_INLINE void BroadcastRows(int64_t count, const float* a, int64_t a_step,
                              int64_t a_stride, const float* b, int64_t b_step,
                              int64_t width, float* const* out) {
  const bt::ScalableTag<float> df;
  const int64_t lanes = static_cast<int64_t>(bt::Lanes(df));
  HWY_ALIGN float tile[H * kMaxTileVectors * bt::MaxLanes(df)];
  int64_t col = 0;
  for (; col + kMaxTileVectors * lanes <= width;
       col += kMaxTileVectors * lanes) {
    BroadcastTile<H, kMaxTileVectors>(count, a, a_step, a_stride, b + col,
                                      b_step, tile);
    for (int h = 0; h < H; ++h) {
      const float* sums = tile + h * kMaxTileVectors * lanes;
      std::copy(sums, sums + kMaxTileVectors * lanes, out[h] + col);
    }
  }
  for (; col + lanes <= width; col += lanes) {
    BroadcastTile<H, 1>(count, a, a_step, a_stride, b + col, b_step, tile);
    for (int h = 0; h < H; ++h) {
      std::copy(tile + h * lanes, tile + (h + 1) * lanes, out[h] + col);
    }
  }
  for (; col < width; ++col) {
    for (int h = 0; h < H; ++h) {
      float sum = 0.0f;
      for (int64_t i = 0; i < count; ++i) {
        sum = std::fma(a[i * a_step + h * a_stride], b[i * b_step + col], sum);
      }
      out[h][col] = sum;
    }
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace llmpack::runtime
HWY_AFTER_NAMESPACE();

#endif  // LLMPACK_RUNTIME_BROADCAST_TILE_INL_H_
