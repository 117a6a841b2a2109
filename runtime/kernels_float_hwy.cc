// The f32/f16/bf16 matmul (f32 arithmetic), compiled once per Highway target.
//
// Every weight vector is loaded once per use and widened in registers (bf16
// -> f32 is a 16-bit shift, f16 -> f32 one conversion), never through a
// scratch row. A register tile of R rows x T tokens keeps R * T f32
// accumulators, so each loaded weight vector feeds T tokens and each loaded
// activation vector feeds R rows. Prefill walks the columns in blocks and the
// tokens in chunks whose activations fit in L2, so a block of a tile's weight
// rows stays in L1 while every token of the chunk passes over it.
//
// Summation order of one output (row r, token t): lanes accumulate the
// vector part of each column block in order, each block's lanes are summed
// (SumOfLanes), the blocks are added in order and the scalar tail (columns
// past the last whole vector) is added to the last block's sum. It depends
// on the token count (the block size does) but never on the row range or the
// tile a row lands in, so results do not depend on how threads split rows.
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "runtime/kernels.h"
#include "runtime/kernels_hwy.h"

// clang-format off
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "runtime/kernels_float_hwy.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/cache_control.h"
#include "hwy/highway.h"
// clang-format on

// Register tiles are spelled out as named variables, one per (row, token),
// because vectors of sizeless types (Arm SVE) cannot live in arrays. The
// macros below visit every name of the largest tile; the tile's template
// arguments drop the ones it does not use.
// clang-format off
#ifndef LLMPACK_FLOAT_TILE_MACROS
#define LLMPACK_FLOAT_TILE_MACROS
#define LLMPACK_TILE_TOKENS(X, i) X(i, 0) X(i, 1) X(i, 2) X(i, 3) X(i, 4) X(i, 5)
#define LLMPACK_TILE(X)                                 \
  LLMPACK_TILE_TOKENS(X, 0) LLMPACK_TILE_TOKENS(X, 1)   \
  LLMPACK_TILE_TOKENS(X, 2) LLMPACK_TILE_TOKENS(X, 3)   \
  LLMPACK_TILE_TOKENS(X, 4) LLMPACK_TILE_TOKENS(X, 5)   \
  LLMPACK_TILE_TOKENS(X, 6) LLMPACK_TILE_TOKENS(X, 7)
#define LLMPACK_TILE_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#define LLMPACK_TILE_TOKEN_LIST(X) X(0) X(1) X(2) X(3) X(4) X(5)
#endif
// clang-format on

HWY_BEFORE_NAMESPACE();
namespace llmpack::runtime {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

// Largest tile: at most 8 rows x 6 tokens (the macros' names).
constexpr int kMaxTileRows = 8;
constexpr int kMaxTileTokens = 6;

// Tile shapes for this target. With 32 vector registers (AVX-512, NEON,
// SVE) 24 accumulators leave room for the row and token vectors; x86
// targets below AVX-512 have 16, so their tiles are smaller. Decode (one
// token) takes more rows so several independent loads are in flight.
#if HWY_ARCH_X86 && HWY_TARGET > HWY_AVX3
constexpr int kRows = 4;
constexpr int kTokens = 2;
#else
constexpr int kRows = 4;
constexpr int kTokens = 6;
#endif
constexpr int kDecodeRows = 4;

// Activations of one chunk of tokens x one column block stay in L2: at most
// this many bytes.
constexpr int64_t kChunkBytes = int64_t{384} << 10;
// Columns per block (whole vectors), unless the row is shorter.
constexpr int64_t kBlockColumns = 2048;

template <typename W>
HWY_INLINE VF LoadWide(DF df, const W* p) {
  if constexpr (std::is_same_v<W, float>) {
    return hn::LoadU(df, p);
  } else {
    const hn::Rebind<W, DF> dw;
    return hn::PromoteTo(df, hn::LoadU(dw, p));
  }
}

template <typename W>
HWY_INLINE float Widen(W v) {
  if constexpr (std::is_same_v<W, float>) {
    return v;
  } else if constexpr (std::is_same_v<W, hwy::bfloat16_t>) {
    return hwy::F32FromBF16(v);
  } else {
    uint16_t bits;
    hwy::CopyBytes<2>(&v, &bits);
    return F16ToF32(bits);
  }
}

// sums[i * T + t] = sum over the whole vectors in [c_begin, c_end) of
// w[i] . x[t], for rows i < R and tokens t < T (token t's activations at
// x + t * x_stride; the matrix's rows w_stride elements apart). c_end -
// c_begin is a multiple of the vector length.
template <int R, int T, typename W>
HWY_INLINE void TileDots(const W* const* w, int64_t w_stride, const float* x,
                         int64_t x_stride, int64_t c_begin, int64_t c_end,
                         float* sums) {
  static_assert(R >= 1 && R <= kMaxTileRows && T >= 1 && T <= kMaxTileTokens);
  const DF df;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  const VF zero = hn::Zero(df);
#define LLMPACK_DECLARE_ACC(i, t) HWY_MAYBE_UNUSED VF acc##i##t = zero;
  LLMPACK_TILE(LLMPACK_DECLARE_ACC)
#undef LLMPACK_DECLARE_ACC
  const W* w_row[kMaxTileRows] = {};
  for (int i = 0; i < R; ++i) w_row[i] = w[i];
  const float* x_row[kMaxTileTokens] = {};
  for (int t = 0; t < T; ++t) x_row[t] = x + t * x_stride;
  // Columns per 64-byte line of a row: one prefetch per line of every row.
  constexpr int64_t kPrefetchColumns = 64 / sizeof(W);
  for (int64_t c = c_begin; c < c_end; c += lanes) {
    if constexpr (T == 1) {
      // Decode streams each row from memory once, R rows side by side: ask
      // for the same columns of the next tile's rows (w_stride elements
      // apart), so they are in cache when it starts. Prefetching a row's own
      // bytes 1 KiB ahead left every tile to start its other rows from DRAM
      // and read at 0.73-0.80 of the bandwidth probe (then in 4 KiB pages,
      // which read ~15% low); this reads at 0.94-0.99 of it (bf16 tg48,
      // 1.24B). A hint: past the matrix it is ignored. Once per 64-byte
      // line: issued every step, AVX2 (16 bytes of bf16 a step) asked for
      // each line four times, and once per line read the bf16 8192x2048 DRAM
      // GEMV ~8% faster on Zen 3 (mean of 14 alternating runs, 2 threads;
      // on AVX-512, two per line, the two measured alike).
      if (c % kPrefetchColumns == 0) {
        for (int i = 0; i < R; ++i) {
          hwy::Prefetch(w_row[i] + c + R * w_stride);
        }
      }
    }
#define LLMPACK_LOAD_ROW(i) \
  HWY_MAYBE_UNUSED const VF w##i = i < R ? LoadWide(df, w_row[i] + c) : zero;
    LLMPACK_TILE_ROWS(LLMPACK_LOAD_ROW)
#undef LLMPACK_LOAD_ROW
#define LLMPACK_LOAD_TOKEN(t) \
  HWY_MAYBE_UNUSED const VF x##t = t < T ? hn::LoadU(df, x_row[t] + c) : zero;
    LLMPACK_TILE_TOKEN_LIST(LLMPACK_LOAD_TOKEN)
#undef LLMPACK_LOAD_TOKEN
#define LLMPACK_FMA(i, t) \
  if constexpr (i < R && t < T) acc##i##t = hn::MulAdd(w##i, x##t, acc##i##t);
    LLMPACK_TILE(LLMPACK_FMA)
#undef LLMPACK_FMA
  }
#define LLMPACK_SUM(i, t)       \
  if constexpr (i < R && t < T) \
    sums[i * T + t] = hn::GetLane(hn::SumOfLanes(df, acc##i##t));
  LLMPACK_TILE(LLMPACK_SUM)
#undef LLMPACK_SUM
}

// What one call needs to know, shared by its tiles.
template <typename W>
struct FloatCall {
  const float* x;
  int64_t cols;
  int64_t vec_end;  // columns in whole vectors
  const WeightMatrix* w;
  float* out;
  int64_t out_stride;
  const W* Row(int64_t r) const {
    return reinterpret_cast<const W*>(w->Row(r));
  }
};

// Tile rows [r0, r0 + R) x tokens [t0, t0 + T) over columns [c0, c1): stores
// (first block) or adds its sums to out; the last block also adds the
// scalar tail.
template <int R, int T, typename W>
HWY_NOINLINE void Tile(const FloatCall<W>& call, int64_t r0, int64_t t0,
                       int64_t c0, int64_t c1) {
  const W* rows[R];
  for (int i = 0; i < R; ++i) rows[i] = call.Row(r0 + i);
  float sums[R * T];
  const float* x = call.x + t0 * call.cols;
  TileDots<R, T, W>(rows, call.cols, x, call.cols, c0, c1, sums);
  const bool first = c0 == 0;
  const bool last = c1 == call.vec_end;
  for (int i = 0; i < R; ++i) {
    for (int t = 0; t < T; ++t) {
      float s = sums[i * T + t];
      if (last) {
        const float* xt = x + t * call.cols;
        float tail = 0.0f;
        for (int64_t c = call.vec_end; c < call.cols; ++c) {
          tail += xt[c] * Widen(rows[i][c]);
        }
        s += tail;
      }
      float& o = call.out[(t0 + t) * call.out_stride + r0 + i];
      o = first ? s : o + s;
    }
  }
}

// Tokens [t_begin, t_end) of rows [r0, r0 + R): whole tiles of kTokens,
// then one smaller tile.
template <int R, typename W>
HWY_INLINE void TokenTiles(const FloatCall<W>& call, int64_t r0,
                           int64_t t_begin, int64_t t_end, int64_t c0,
                           int64_t c1) {
  int64_t t = t_begin;
  for (; t + kTokens <= t_end; t += kTokens) {
    Tile<R, kTokens, W>(call, r0, t, c0, c1);
  }
  switch (t_end - t) {
#define LLMPACK_TAIL_TILE(n)              \
  case n:                                 \
    if constexpr (n > 0 && n < kTokens) { \
      Tile<R, n, W>(call, r0, t, c0, c1); \
    }                                     \
    break;
    LLMPACK_TILE_TOKEN_LIST(LLMPACK_TAIL_TILE)
#undef LLMPACK_TAIL_TILE
    default:
      break;
  }
}

template <typename W>
void FloatMatMulTyped(const float* x, int64_t tokens, const WeightMatrix& w,
                      int64_t row_begin, int64_t row_end, float* out,
                      int64_t out_stride) {
  const DF df;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  FloatCall<W> call{x, w.cols, w.cols / lanes * lanes, &w, out, out_stride};
  if (tokens == 1) {
    // Decode: every weight byte is read once from memory; the whole row is
    // one block.
    int64_t r = row_begin;
    for (; r + kDecodeRows <= row_end; r += kDecodeRows) {
      Tile<kDecodeRows, 1, W>(call, r, 0, 0, call.vec_end);
    }
    for (; r < row_end; ++r) Tile<1, 1, W>(call, r, 0, 0, call.vec_end);
    return;
  }
  const int64_t block =
      std::max<int64_t>(lanes, std::min(call.vec_end, kBlockColumns));
  const int64_t chunk = std::max<int64_t>(
      kTokens,
      kChunkBytes / (block * int64_t{sizeof(float)}) / kTokens * kTokens);
  for (int64_t t0 = 0; t0 < tokens; t0 += chunk) {
    const int64_t t1 = std::min(tokens, t0 + chunk);
    // At least one block, so rows shorter than a vector still get their
    // scalar tail.
    int64_t c0 = 0;
    do {
      const int64_t c1 = std::min(call.vec_end, c0 + block);
      int64_t r = row_begin;
      for (; r + kRows <= row_end; r += kRows) {
        TokenTiles<kRows, W>(call, r, t0, t1, c0, c1);
      }
      for (; r < row_end; ++r) TokenTiles<1, W>(call, r, t0, t1, c0, c1);
      c0 = c1;
    } while (c0 < call.vec_end);
  }
}

void FloatMatMul(const float* x, int64_t tokens, const WeightMatrix& w,
                 int64_t row_begin, int64_t row_end, float* out,
                 int64_t out_stride) {
  switch (w.dtype) {
    case DType::kBF16:
      FloatMatMulTyped<hwy::bfloat16_t>(x, tokens, w, row_begin, row_end, out,
                                        out_stride);
      break;
    case DType::kF16:
      FloatMatMulTyped<hwy::float16_t>(x, tokens, w, row_begin, row_end, out,
                                       out_stride);
      break;
    default:
      FloatMatMulTyped<float>(x, tokens, w, row_begin, row_end, out,
                              out_stride);
      break;
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace llmpack::runtime
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace llmpack::runtime {

HWY_EXPORT(FloatMatMul);

void FloatMatMulHighway(const float* x, int64_t tokens, const WeightMatrix& w,
                        int64_t row_begin, int64_t row_end, float* out,
                        int64_t out_stride) {
  HWY_DYNAMIC_DISPATCH(FloatMatMul)
  (x, tokens, w, row_begin, row_end, out, out_stride);
}

}  // namespace llmpack::runtime
#endif  // HWY_ONCE
