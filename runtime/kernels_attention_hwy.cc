// Causal attention of a block of prompt rows (token, query head) against
// one kv head, compiled once per Highway target.
//
// Why: per-token attention, run once per prompt token, took 13% of int4
// prefill at about a seventh of the f32 FMA probe (each key and value row
// read once per query head, each score summed across lanes). Here up to
// kAttentionRowBlock rows share the vector lanes. The queries are
// transposed once (qt[d][r]), so one key's scores for a vector of rows are
// sum_d qt[d][rows] * k_j[d] with k_j[d] broadcast and no sum across lanes;
// softmax runs down the key axis of each vector of rows; and each output
// vector is sum_j p[j][r] (broadcast) * v_j[d..]. Every loaded key or value
// element serves all rows of a register tile.
//
// Arithmetic of one row, the same as decode's Attention (kernels_hwy.cc)
// for that token, so prompts and token-by-token decode agree exactly: each
// score is one multiply-add chain over d in order, times scale; softmax
// takes Exp of every score, sums in key order and multiplies by 1 / sum;
// each output element is one multiply-add chain over keys in order. Keys
// past a row's length get probability 0 and add exactly nothing.
#include <algorithm>
#include <cstdint>
#include <limits>

#include "runtime/kernels.h"
#include "runtime/kernels_hwy.h"

// clang-format off
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "runtime/kernels_attention_hwy.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "hwy/contrib/math/math-inl.h"
#include "runtime/broadcast_tile-inl.h"
// clang-format on

HWY_BEFORE_NAMESPACE();
namespace llmpack::runtime {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

// Tile shapes: scores take kScoreRowVectors vectors of rows x 4 keys,
// outputs kOutputRows rows x 4 vectors of the head (BroadcastRows). x86 targets
// below AVX-512 have 16 vector registers, the others 32.
#if HWY_ARCH_X86 && HWY_TARGET > HWY_AVX3
constexpr int kScoreRowVectors = 2;
constexpr int kOutputRows = 2;
#else
constexpr int kScoreRowVectors = 4;
constexpr int kOutputRows = 5;
#endif

// st[j * cs + c + i * lanes] = scale * (qt rows c + i * lanes ..) . k_j for
// row vectors i < RV and keys j0 + j, j < J (key j's element d at k[d *
// k_stride + j]).
template <int RV, int J>
HWY_INLINE void ScoreTile(const float* qt, int64_t cs, const float* k,
                          int64_t k_stride, int64_t head_dim, int64_t c,
                          int64_t j0, float scale, float* st) {
  const DF df;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  HWY_ALIGN float tile[J * RV * hn::MaxLanes(df)];
  BroadcastTile<J, RV>(head_dim, k + j0, k_stride, 1, qt + c, cs, tile);
  for (int j = 0; j < J; ++j) {
    float* dst = st + (j0 + j) * cs + c;
    const float* sums = tile + j * RV * lanes;
    for (int64_t l = 0; l < RV * lanes; ++l) dst[l] = sums[l] * scale;
  }
}

// Scores of row vectors [c, c + RV * lanes) for keys [0, len).
template <int RV>
HWY_INLINE void ScoreRows(const float* qt, int64_t cs, const float* k,
                          int64_t k_stride, int64_t head_dim, int64_t c,
                          int64_t len, float scale, float* st) {
  int64_t j = 0;
  for (; j + 4 <= len; j += 4) {
    ScoreTile<RV, 4>(qt, cs, k, k_stride, head_dim, c, j, scale, st);
  }
  for (; j < len; ++j) {
    ScoreTile<RV, 1>(qt, cs, k, k_stride, head_dim, c, j, scale, st);
  }
}

// Softmax down column vector [c, c + lanes) of st over keys [0, len), where
// lane l's row has lens[l] keys (the rest get 0).
HWY_INLINE void SoftmaxColumns(float* st, int64_t cs, int64_t c, int64_t len,
                               VF lens) {
  const DF df;
  const VF lowest = hn::Set(df, -std::numeric_limits<float>::infinity());
  VF max = lowest;
  for (int64_t j = 0; j < len; ++j) {
    const auto valid = hn::Lt(hn::Set(df, static_cast<float>(j)), lens);
    max = hn::Max(
        max, hn::IfThenElse(valid, hn::LoadU(df, st + j * cs + c), lowest));
  }
  VF sum = hn::Zero(df);
  for (int64_t j = 0; j < len; ++j) {
    const auto valid = hn::Lt(hn::Set(df, static_cast<float>(j)), lens);
    float* s = st + j * cs + c;
    const VF e =
        hn::IfThenElseZero(valid, hn::Exp(df, hn::Sub(hn::LoadU(df, s), max)));
    hn::StoreU(e, df, s);
    sum = hn::Add(sum, e);
  }
  const VF inv = hn::Div(hn::Set(df, 1.0f), sum);
  for (int64_t j = 0; j < len; ++j) {
    float* s = st + j * cs + c;
    hn::StoreU(hn::Mul(hn::LoadU(df, s), inv), df, s);
  }
}

void AttentionRows(const float* q, int64_t q_stride, int64_t group,
                   int64_t pos0, int64_t row_begin, int64_t row_end,
                   const float* k, int64_t k_stride, const float* v,
                   int64_t v_stride, int64_t head_dim, float scale,
                   float* scratch, float* out) {
  const DF df;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  const int64_t rows = row_end - row_begin;
  if (rows <= 0) return;
  const int64_t vectors = (rows + lanes - 1) / lanes;
  // Column stride: the block's rows padded to whole vectors.
  const int64_t cs = (kAttentionRowBlock + lanes - 1) / lanes * lanes;
  auto keys_of = [&](int64_t r) { return AttentionRowKeys(pos0, group, r); };
  const int64_t len = keys_of(row_end - 1);
  float* qt = scratch;                  // [head_dim][cs]
  float* st = scratch + head_dim * cs;  // [len][cs]
  auto row_offset = [&](int64_t r) {
    return r / group * q_stride + r % group * head_dim;
  };
  // Padding rows have zero queries and one key, so every column's softmax
  // stays finite; their outputs are never stored.
  for (int64_t d = 0; d < head_dim; ++d) {
    float* dst = qt + d * cs;
    for (int64_t r = 0; r < rows; ++r)
      dst[r] = q[row_offset(row_begin + r) + d];
    std::fill(dst + rows, dst + vectors * lanes, 0.0f);
  }
  int64_t c = 0;
  for (; c + kScoreRowVectors <= vectors; c += kScoreRowVectors) {
    ScoreRows<kScoreRowVectors>(qt, cs, k, k_stride, head_dim, c * lanes, len,
                                scale, st);
  }
  for (; c < vectors; ++c) {
    ScoreRows<1>(qt, cs, k, k_stride, head_dim, c * lanes, len, scale, st);
  }
  HWY_ALIGN float lens[hn::MaxLanes(df)];
  for (int64_t i = 0; i < vectors; ++i) {
    for (int64_t l = 0; l < lanes; ++l) {
      const int64_t r = i * lanes + l;
      lens[l] = static_cast<float>(r < rows ? keys_of(row_begin + r) : 1);
    }
    SoftmaxColumns(st, cs, i * lanes, len, hn::Load(df, lens));
  }
  // Each tile runs over the keys of its last row; earlier rows' extra keys
  // have probability 0.
  float* out_rows[kOutputRows];
  int64_t r = 0;
  for (; r + kOutputRows <= rows; r += kOutputRows) {
    for (int i = 0; i < kOutputRows; ++i) {
      out_rows[i] = out + row_offset(row_begin + r + i);
    }
    BroadcastRows<kOutputRows>(keys_of(row_begin + r + kOutputRows - 1), st + r,
                               cs, 1, v, v_stride, head_dim, out_rows);
  }
  for (; r < rows; ++r) {
    out_rows[0] = out + row_offset(row_begin + r);
    BroadcastRows<1>(keys_of(row_begin + r), st + r, cs, 1, v, v_stride,
                     head_dim, out_rows);
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace llmpack::runtime
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace llmpack::runtime {

HWY_EXPORT(AttentionRows);

void AttentionRowsHighway(const float* q, int64_t q_stride, int64_t group,
                          int64_t pos0, int64_t row_begin, int64_t row_end,
                          const float* k, int64_t k_stride, const float* v,
                          int64_t v_stride, int64_t head_dim, float scale,
                          float* scratch, float* out) {
  HWY_DYNAMIC_DISPATCH(AttentionRows)
  (q, q_stride, group, pos0, row_begin, row_end, k, k_stride, v, v_stride,
   head_dim, scale, scratch, out);
}

}  // namespace llmpack::runtime
#endif  // HWY_ONCE
