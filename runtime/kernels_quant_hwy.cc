// The quantized matmul of quant_matmul.h for every Highway target: what
// CPUs without AVX-512 VNNI run (AVX2 x86, ARM NEON/SVE). Highway 1.0.3 has
// no byte dot product, so the 15-bit activation codes are kept as i16
// (QuantizedActivations::codes) and the weight codes are widened to i16:
// ReorderWidenMulAccumulate (vpmaddwd on x86, smlal on NEON) then adds two
// exact products per i32 lane.
//
// Layout of one step: one activation block (32 elements). q4 reads the
// block's 16 code bytes, whose low nibbles meet the block's 16 even
// elements and high nibbles its 16 odd ones (activations are in q4 order);
// q8 reads 32 signed codes in natural order. The block's i32 lanes are
// converted and scaled by scale[g] * sa[b] into f32 accumulators, so no
// lane is reduced per block. The zero-point term zero[g] * scale[g] * sa[b] *
// sum(a) is subtracted per row after the blocks, as the AVX-512 VNNI kernel
// does; a row's last, partial block goes through the scalar reference.
// On x86 (AVX2 and up) q4 takes two kernels further down instead: prompts
// the row-lane kernel (one vector lane per weight row), decode the quad
// kernel (codes split by shifts alone, eight blocks scaled at once).
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <vector>

#include "runtime/kernels.h"
#include "runtime/quant_matmul.h"

// clang-format off
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "runtime/kernels_quant_hwy.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "hwy/cache_control.h"
// clang-format on

HWY_BEFORE_NAMESPACE();
namespace llmpack::runtime {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

#if HWY_TARGET == HWY_SCALAR

void QuantMatMul(const QuantizedActivations& a, const WeightMatrix& w,
                 int64_t row_begin, int64_t row_end, float* out,
                 int64_t out_stride) {
  QuantizedMatMulReference(a, w, row_begin, row_end, out, out_stride);
}

#else

// At most 16 i16 lanes: one q4 block's even (or odd) codes, so a block is a
// whole number of vectors on every target.
using D16 = hn::CappedTag<int16_t, 16>;
using D32 = hn::RepartitionToWide<D16>;
using DF = hn::Rebind<float, D32>;

constexpr int64_t kHalf = kActivationBlock / 2;

// What every tile needs to know about one matmul call.
struct Call {
  const QuantizedActivations* a;
  const WeightMatrix* w;
  const quant::RowLayout* layout;
  int64_t full_blocks;  // blocks before the first partial one
  float* out;
  int64_t out_stride;
  // Decode: the end of the rows whose bytes a tile prefetches (see Tile).
  const uint8_t* prefetch_end = nullptr;
};

// Per-thread buffers of the weight side of a row's blocks [0, full_blocks):
// scale[g(b)] and scale[g(b)] * zero[g(b)].
struct RowScales {
  std::vector<float> scale;
  std::vector<float> zero_scale;
};

// The scales of blocks [b, b + lanes) from a row's scale array.
template <bool kBf16>
HWY_INLINE hn::Vec<DF> LoadScalesAs(const uint8_t* scales, int64_t b) {
  const DF df;
  if constexpr (kBf16) {
    return hn::PromoteTo(
        df, hn::LoadU(hn::Rebind<hwy::bfloat16_t, DF>(),
                      reinterpret_cast<const hwy::bfloat16_t*>(scales) + b));
  } else {
    return hn::PromoteTo(
        df, hn::LoadU(hn::Rebind<hwy::float16_t, DF>(),
                      reinterpret_cast<const hwy::float16_t*>(scales) + b));
  }
}

// The q4 zero points of blocks [b, b + lanes) from a row's nibble array,
// lane i holding the zero of block b + i, or with `shifts` (4 * block
// index, per lane) of block b + shifts[i] / 4.
HWY_INLINE hn::Vec<DF> LoadQ4Zeros(const uint8_t* zeros, int64_t b,
                                   hn::Vec<hn::RebindToUnsigned<DF> > shifts) {
  const DF df;
  const hn::RebindToUnsigned<DF> du32;
  const hn::RebindToSigned<DF> di32;
  // At most 8 lanes (D32 is capped), so one word holds them all, block i
  // in nibble i (low nibble first); b is even.
  uint32_t word = 0;
  std::memcpy(&word, zeros + b / 2, hn::Lanes(df) / 2);
  const auto z =
      hn::And(hn::Shr(hn::Set(du32, word), shifts), hn::Set(du32, 0x0F));
  return hn::ConvertTo(df, hn::BitCast(di32, z));
}
HWY_INLINE hn::Vec<DF> LoadQ4Zeros(const uint8_t* zeros, int64_t b) {
  const hn::RebindToUnsigned<DF> du32;
  return LoadQ4Zeros(zeros, b, hn::ShiftLeft<2>(hn::Iota(du32, 0)));
}

// Blocks [b, b + lanes) of a row whose groups are its blocks (group size
// kActivationBlock): their scales, and their zero points, as f32 vectors.
// b is a multiple of the lane count. (Two functions, not a struct: SVE
// vectors cannot be members.)
HWY_INLINE hn::Vec<DF> LoadBlockScales(const quant::RowLayout& layout,
                                       const uint8_t* row, int64_t b) {
  const uint8_t* p = row + layout.scale_offset;
  return layout.format.scale_dtype == DType::kBF16 ? LoadScalesAs<true>(p, b)
                                                   : LoadScalesAs<false>(p, b);
}

HWY_INLINE hn::Vec<DF> LoadBlockZeros(const quant::RowLayout& layout,
                                      const uint8_t* row, int64_t b) {
  const DF df;
  const hn::RebindToSigned<DF> di32;
  const uint8_t* zeros = row + layout.zp_offset;
  if (!layout.format.zero_point) {
    return hn::Set(df, static_cast<float>(layout.ImplicitZero()));
  }
  if (layout.format.dtype == DType::kQ4) return LoadQ4Zeros(zeros, b);
  return hn::ConvertTo(
      df, hn::PromoteTo(di32,
                        hn::LoadU(hn::Rebind<int8_t, DF>(),
                                  reinterpret_cast<const int8_t*>(zeros) + b)));
}

void FillRowScales(const Call& c, const uint8_t* row, RowScales* out) {
  const quant::RowLayout& layout = *c.layout;
  const int64_t group = layout.format.group_size;
  const int64_t n = c.full_blocks;
  // Room for one whole vector past the last block (see SubtractZeroTerm).
  const size_t size = static_cast<size_t>(n + hn::MaxLanes(DF()));
  if (out->scale.size() < size) {
    out->scale.resize(size);
    out->zero_scale.resize(size);
  }
  float* scale = out->scale.data();
  float* zero_scale = out->zero_scale.data();
  int64_t b = 0;
  if (group == kActivationBlock) {
    // One group per block: a vector of blocks at a time.
    const DF df;
    const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
    for (; b + lanes <= n; b += lanes) {
      const auto sv = LoadBlockScales(layout, row, b);
      hn::StoreU(sv, df, scale + b);
      hn::StoreU(hn::Mul(sv, LoadBlockZeros(layout, row, b)), df,
                 zero_scale + b);
    }
  }
  // Other groups, and blocks past the last whole vector.
  const int64_t blocks_per_group = group / kActivationBlock;
  for (; b < n; ++b) {
    const int64_t g = b / blocks_per_group;
    scale[b] = quant::GroupScale(layout, row, g);
    zero_scale[b] =
        scale[b] * static_cast<float>(quant::GroupZero(layout, row, g));
  }
  std::fill(zero_scale + n, zero_scale + size, 0.0f);
}

// acc -= sum over blocks of zero_scale[b] * scaled_sums[b] (lane-wise, so
// one reduction later gives the dot).
HWY_INLINE hn::Vec<DF> SubtractZeroTerm(const float* zero_scale,
                                        const float* scaled_sums, int64_t n,
                                        hn::Vec<DF> acc) {
  const DF df;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  int64_t b = 0;
  for (; b + lanes <= n; b += lanes) {
    acc = hn::NegMulAdd(hn::LoadU(df, zero_scale + b),
                        hn::LoadU(df, scaled_sums + b), acc);
  }
  if (b < n) {
    // zero_scale is zero past n, and scaled_sums may be shorter than a
    // vector there: copy what is left.
    HWY_ALIGN float sums[hn::MaxLanes(DF())] = {};
    std::copy(scaled_sums + b, scaled_sums + n, sums);
    acc = hn::NegMulAdd(hn::LoadU(df, zero_scale + b), hn::Load(df, sums), acc);
  }
  return acc;
}

// A tile's vectors, indexed by constants once the loops are unrolled. SVE
// vectors are sizeless and cannot be array elements, so there they live in
// an aligned buffer (loads and stores); elsewhere they are registers.
template <class D, int N>
struct Slots {
#if HWY_HAVE_SCALABLE
  static constexpr size_t kStride = hn::MaxLanes(D());
  HWY_ALIGN hn::TFromD<D> lanes[N * kStride];
  HWY_INLINE hn::Vec<D> Get(int i) const {
    return hn::Load(D(), lanes + i * kStride);
  }
  HWY_INLINE void Put(int i, hn::Vec<D> v) {
    hn::Store(v, D(), lanes + i * kStride);
  }
#else
  // Declared here so it carries the target attribute (the implicit one did
  // not on NEON).
  HWY_INLINE Slots() {}
  hn::Vec<D> v[N];
  HWY_INLINE hn::Vec<D> Get(int i) const { return v[i]; }
  HWY_INLINE void Put(int i, hn::Vec<D> x) { v[i] = x; }
#endif
};

// Rows [r0, r0 + R) x tokens [t0, t0 + T): each block of a weight row is
// loaded and widened once and used for all T tokens.
template <bool kQ4, int R, int T>
HWY_NOINLINE void Tile(const Call& c, int64_t r0, int64_t t0) {
  static thread_local RowScales row_scales[R];
  const QuantizedActivations& a = *c.a;
  const D16 d16;
  const D32 d32;
  const DF df;
  const hn::Rebind<uint8_t, D16> du8;
  const hn::Rebind<int8_t, D16> di8;
  const int64_t n16 = static_cast<int64_t>(hn::Lanes(d16));
  const uint8_t* rows[R];
  const float* scales[R];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) {
    rows[i] = c.w->Row(r0 + i);
    FillRowScales(c, rows[i], &row_scales[i]);
    scales[i] = row_scales[i].scale.data();
  }
  const int16_t* codes[T];
  const float* act_scales[T];
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t) {
    codes[t] = a.Codes(t0 + t);
    act_scales[t] = a.Scales(t0 + t);
  }
  Slots<DF, R * T> acc;
#pragma GCC unroll 8
  for (int i = 0; i < R * T; ++i) acc.Put(i, hn::Zero(df));
  // Decode streams every weight byte once from memory: the tile fetches
  // the next tile's rows (contiguous) spread over its own blocks, so its
  // compute covers their latency (as the AVX-512 VNNI decode does).
  const uint8_t* next = rows[R - 1] + c.layout->row_bytes;
  const int64_t prefetch_lines = DecodePrefetchLines(
      next, c.prefetch_end, R * c.layout->row_bytes, c.full_blocks);
  const auto nibble = hn::Set(d16, 15);
  const int64_t pieces = (kQ4 ? kHalf : kActivationBlock) / n16;
  for (int64_t b = 0; b < c.full_blocks; ++b) {
    for (int64_t k = 0; k < prefetch_lines; ++k) {
      hwy::Prefetch(next + 64 * (b * prefetch_lines + k));
    }
    // Offsets of this block's even and odd codes (q4 order) or of all its
    // codes (natural order) in a token's codes (ActivationCodeIndex).
    const int64_t s = b / 4;
    const int64_t m = std::min<int64_t>(4, a.blocks - 4 * s);
    const int64_t even =
        kQ4 ? 4 * s * kActivationBlock + kHalf * (b % 4) : b * kActivationBlock;
    const int64_t odd = even + kHalf * m;
    // Two sums per dot: ReorderWidenMulAccumulate may add the products of
    // upper lanes into the second (NEON); x86 leaves it zero.
    Slots<D32, R * T> dots, dots_upper;
#pragma GCC unroll 8
    for (int i = 0; i < R * T; ++i) {
      dots.Put(i, hn::Zero(d32));
      dots_upper.Put(i, hn::Zero(d32));
    }
    // dots[i * T + t] += the products of a and b.
    const auto multiply_add = [&](int k, hn::Vec<D16> x, hn::Vec<D16> y) {
      auto upper = dots_upper.Get(k);
      dots.Put(k, hn::ReorderWidenMulAccumulate(d32, x, y, dots.Get(k), upper));
      dots_upper.Put(k, upper);
    };
    for (int64_t p = 0; p < pieces; ++p) {
      const int64_t off = p * n16;
      if constexpr (kQ4) {
        Slots<D16, T> act_even, act_odd;
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t) {
          act_even.Put(t, hn::LoadU(d16, codes[t] + even + off));
          act_odd.Put(t, hn::LoadU(d16, codes[t] + odd + off));
        }
#pragma GCC unroll 8
        for (int i = 0; i < R; ++i) {
          const auto v =
              hn::PromoteTo(d16, hn::LoadU(du8, rows[i] + kHalf * b + off));
          const auto lo = hn::And(v, nibble);
          const auto hi = hn::ShiftRight<4>(v);
#pragma GCC unroll 8
          for (int t = 0; t < T; ++t) {
            multiply_add(i * T + t, lo, act_even.Get(t));
            multiply_add(i * T + t, hi, act_odd.Get(t));
          }
        }
      } else {
        Slots<D16, T> act;
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t) {
          act.Put(t, hn::LoadU(d16, codes[t] + even + off));
        }
#pragma GCC unroll 8
        for (int i = 0; i < R; ++i) {
          const auto q = hn::PromoteTo(
              d16, hn::LoadU(di8, reinterpret_cast<const int8_t*>(rows[i]) +
                                      kActivationBlock * b + off));
#pragma GCC unroll 8
          for (int t = 0; t < T; ++t) multiply_add(i * T + t, q, act.Get(t));
        }
      }
    }
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) {
        const auto scale = hn::Set(df, scales[i][b] * act_scales[t][b]);
        const int k = i * T + t;
        const auto dot = hn::Add(dots.Get(k), dots_upper.Get(k));
        acc.Put(k, hn::MulAdd(hn::ConvertTo(df, dot), scale, acc.Get(k)));
      }
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) {
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      const auto total = SubtractZeroTerm(row_scales[i].zero_scale.data(),
                                          a.ScaledSums(t0 + t), c.full_blocks,
                                          acc.Get(i * T + t));
      float sum = hn::GetLane(hn::SumOfLanes(df, total));
      if (c.full_blocks < a.blocks) {
        sum += QuantizedDotReference(a, t0 + t, *c.layout, rows[i],
                                     c.full_blocks, a.blocks);
      }
      c.out[(t0 + t) * c.out_stride + r0 + i] = sum;
    }
  }
}

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
// The x86 q4 decode (AVX2 and up; D16 is then 16 lanes). Read as 16 u16
// lanes, the 32 code bytes of blocks b, b + 1 (b even) give four vectors by
// shifts and masks alone: lane j's nibble k is element 4 * (j % 8) + k of
// block b + j / 8. ("Quads": BuildQuads stores the activation codes in the
// same order, 64 per block pair.) The multiply-adds leave block b's partial
// sums in the low 128-bit half and block b + 1's in the high one; three
// phaddd reduce eight blocks to one vector [b0 b2 b4 b6 | b1 b3 b5 b7],
// scaled by the eight scale[g] * sa[b] in that order. Per block this is a
// third of the work of Tile's per-block convert and scalar-broadcast
// multiply-add, and no cross-lane widening of the codes.
constexpr bool kDecodeQuads = true;

// [a0 + a1, a2 + a3, b0 + b1, b2 + b3] in each 128-bit half (phaddd).
HWY_INLINE hn::Vec<D32> PairSums(hn::Vec<D32> a, hn::Vec<D32> b) {
  return hn::Vec<D32>{_mm256_hadd_epi32(a.raw, b.raw)};
}

// Token 0's codes (q4 order) of blocks [0, blocks) in quad order: for each
// pair (b, b + 1), four vectors of 16 codes, vector k holding elements
// 4 * j + k of block b in lanes j < 8 and of block b + 1 in lanes 8 + j.
void BuildQuads(const QuantizedActivations& a, int64_t blocks,
                std::vector<int16_t>* quads) {
  const D16 d16;
  quads->resize(static_cast<size_t>(blocks * kActivationBlock));
  const int16_t* codes = a.Codes(0);
  for (int64_t b = 0; b < blocks; b += 2) {
    // b and b + 1 share a superblock of four (b % 4 is 0 or 2).
    const int64_t s = b / 4;
    const int64_t even = 4 * s * kActivationBlock + kHalf * (b % 4);
    const int64_t odd = even + 4 * kHalf;
    const auto e0 = hn::LoadU(d16, codes + even);
    const auto e1 = hn::LoadU(d16, codes + even + kHalf);
    const auto o0 = hn::LoadU(d16, codes + odd);
    const auto o1 = hn::LoadU(d16, codes + odd + kHalf);
    // Element 4j is even code 2j, 4j + 1 odd code 2j, 4j + 2 even code
    // 2j + 1 and 4j + 3 odd code 2j + 1.
    int16_t* out = quads->data() + b * kActivationBlock;
    hn::StoreU(hn::ConcatEven(d16, e1, e0), d16, out);
    hn::StoreU(hn::ConcatEven(d16, o1, o0), d16, out + 16);
    hn::StoreU(hn::ConcatOdd(d16, e1, e0), d16, out + 32);
    hn::StoreU(hn::ConcatOdd(d16, o1, o0), d16, out + 48);
  }
}

// Rows [r0, r0 + R) times token 0; c.full_blocks is a multiple of 8. With
// kDirect (one group per block) the scales and zero points are read with
// the codes, eight blocks at a time; otherwise from FillRowScales' buffers.
// Where a quad tile's block scales come from: per-row arrays that
// FillRowScales fills (groups longer than a block), or the row itself (group
// 32), read as f16 or bf16. Fixed at compile time with the zero points'
// kind, so the loop has no branch on the row layout.
enum class QuadScales { kRowScales, kF16, kBf16 };

template <int R, QuadScales kScales, bool kZeroNibbles>
HWY_NOINLINE void DecodeQuadTile(const Call& c, const int16_t* quads,
                                 int64_t r0) {
  constexpr bool kDirect = kScales != QuadScales::kRowScales;
  static thread_local RowScales row_scales[R];
  const QuantizedActivations& a = *c.a;
  const D16 d16;
  const hn::RebindToUnsigned<D16> du16;
  const D32 d32;
  const DF df;
  const uint8_t* rows[R];
  for (int i = 0; i < R; ++i) {
    rows[i] = c.w->Row(r0 + i);
    if (!kDirect) FillRowScales(c, rows[i], &row_scales[i]);
  }
  const float* act_scales = a.Scales(0);
  const float* scaled_sums = a.ScaledSums(0);
  hn::Vec<DF> acc[R];
  // Unrolled, or GCC turns the loop into a memset of the spilled array: a
  // `rep stos` per tile, 5% of a decode profile.
#pragma GCC unroll 4
  for (int i = 0; i < R; ++i) acc[i] = hn::Zero(df);
  // As Tile: fetch the next tile's rows spread over this one's steps.
  const uint8_t* next = rows[R - 1] + c.layout->row_bytes;
  const int64_t steps = c.full_blocks / 8;
  const int64_t prefetch_lines =
      DecodePrefetchLines(next, c.prefetch_end, R * c.layout->row_bytes, steps);
  const auto nibble = hn::Set(du16, 15);
  const auto implicit_zero =
      hn::Set(df, static_cast<float>(c.layout->ImplicitZero()));
  // Lane order of the reduced sums: blocks 0 2 4 6 | 1 3 5 7; zero points
  // are read straight into it.
  const auto order = hn::SetTableIndices(
      df, std::array<int32_t, 8>{0, 2, 4, 6, 1, 3, 5, 7}.data());
  const auto zero_shifts =
      hn::LoadU(hn::RebindToUnsigned<DF>(),
                std::array<uint32_t, 8>{0, 8, 16, 24, 4, 12, 20, 28}.data());
  for (int64_t s = 0; s < steps; ++s) {
    for (int64_t k = 0; k < prefetch_lines; ++k) {
      hwy::Prefetch(next + 64 * (s * prefetch_lines + k));
    }
    const int16_t* q = quads + s * 8 * kActivationBlock;
    const auto sa =
        hn::TableLookupLanes(hn::LoadU(df, act_scales + 8 * s), order);
    const auto ss =
        hn::TableLookupLanes(hn::LoadU(df, scaled_sums + 8 * s), order);
#pragma GCC unroll 4
    for (int i = 0; i < R; ++i) {
      hn::Vec<D32> pair_dots[4];
#pragma GCC unroll 4
      for (int p = 0; p < 4; ++p) {
        const auto v = hn::LoadU(
            du16, reinterpret_cast<const uint16_t*>(rows[i] + kHalf * 8 * s) +
                      16 * p);
        const int16_t* qp = q + 64 * p;
        auto dots = hn::Zero(d32);
        auto upper = hn::Zero(d32);
        dots = hn::ReorderWidenMulAccumulate(
            d32, hn::BitCast(d16, hn::And(v, nibble)), hn::LoadU(d16, qp), dots,
            upper);
        dots = hn::ReorderWidenMulAccumulate(
            d32, hn::BitCast(d16, hn::And(hn::ShiftRight<4>(v), nibble)),
            hn::LoadU(d16, qp + 16), dots, upper);
        dots = hn::ReorderWidenMulAccumulate(
            d32, hn::BitCast(d16, hn::And(hn::ShiftRight<8>(v), nibble)),
            hn::LoadU(d16, qp + 32), dots, upper);
        dots = hn::ReorderWidenMulAccumulate(
            d32, hn::BitCast(d16, hn::ShiftRight<12>(v)),
            hn::LoadU(d16, qp + 48), dots, upper);
        pair_dots[p] = dots;  // x86: `upper` stays zero
      }
      const auto sums = PairSums(PairSums(pair_dots[0], pair_dots[1]),
                                 PairSums(pair_dots[2], pair_dots[3]));
      if constexpr (kDirect) {
        // Per block: scale * (sa * dot - zero * scaled_sum), in sum order.
        const auto scale = LoadScalesAs<kScales == QuadScales::kBf16>(
            rows[i] + c.layout->scale_offset, 8 * s);
        const auto zeros =
            kZeroNibbles
                ? LoadQ4Zeros(rows[i] + c.layout->zp_offset, 8 * s, zero_shifts)
                : implicit_zero;
        const auto unscaled =
            hn::NegMulAdd(zeros, ss, hn::Mul(hn::ConvertTo(df, sums), sa));
        acc[i] =
            hn::MulAdd(hn::TableLookupLanes(scale, order), unscaled, acc[i]);
      } else {
        const auto scale = hn::LoadU(df, row_scales[i].scale.data() + 8 * s);
        acc[i] =
            hn::MulAdd(hn::ConvertTo(df, sums),
                       hn::Mul(hn::TableLookupLanes(scale, order), sa), acc[i]);
      }
    }
  }
  for (int i = 0; i < R; ++i) {
    const auto total =
        kDirect ? acc[i]
                : SubtractZeroTerm(row_scales[i].zero_scale.data(), scaled_sums,
                                   c.full_blocks, acc[i]);
    float sum = hn::GetLane(hn::SumOfLanes(df, total));
    if (c.full_blocks < a.blocks) {
      sum += QuantizedDotReference(a, 0, *c.layout, rows[i], c.full_blocks,
                                   a.blocks);
    }
    c.out[r0 + i] = sum;
  }
}

template <QuadScales kScales, bool kZeroNibbles>
void DecodeQuadRows(const Call& c, const int16_t* quads, int64_t row_begin,
                    int64_t row_end) {
  int64_t r = row_begin;
  for (; r + 4 <= row_end; r += 4) {
    DecodeQuadTile<4, kScales, kZeroNibbles>(c, quads, r);
  }
  for (; r < row_end; ++r)
    DecodeQuadTile<1, kScales, kZeroNibbles>(c, quads, r);
}

void DecodeQuads(const Call& c, int64_t row_begin, int64_t row_end) {
  static thread_local std::vector<int16_t> quads;
  BuildQuads(*c.a, c.full_blocks, &quads);
  const quant::QuantFormat& format = c.layout->format;
  if (format.group_size != kActivationBlock) {
    DecodeQuadRows<QuadScales::kRowScales, false>(c, quads.data(), row_begin,
                                                  row_end);
  } else if (format.scale_dtype == DType::kBF16) {
    if (format.zero_point) {
      DecodeQuadRows<QuadScales::kBf16, true>(c, quads.data(), row_begin,
                                              row_end);
    } else {
      DecodeQuadRows<QuadScales::kBf16, false>(c, quads.data(), row_begin,
                                               row_end);
    }
  } else if (format.zero_point) {
    DecodeQuadRows<QuadScales::kF16, true>(c, quads.data(), row_begin, row_end);
  } else {
    DecodeQuadRows<QuadScales::kF16, false>(c, quads.data(), row_begin,
                                            row_end);
  }
}
#else
constexpr bool kDecodeQuads = false;
void DecodeQuads(const Call&, int64_t, int64_t) {}
#endif

// Tokens [t_begin, t_end) of rows [r0, r0 + R), two tokens at a time.
template <bool kQ4, int R>
void TokenTiles(const Call& c, int64_t r0, int64_t t_begin, int64_t t_end) {
  int64_t t = t_begin;
  for (; t + 2 <= t_end; t += 2) Tile<kQ4, R, 2>(c, r0, t);
  if (t < t_end) Tile<kQ4, R, 1>(c, r0, t);
}

#if HWY_ARCH_X86
// Prompts on x86: one vector lane per weight row. vpmaddwd adds the two
// products of adjacent i16 lanes, so a weight-row tile is unpacked once
// into pairs, [block][pair j][row lane] as i32 (two i16 codes minus their
// zero point), and each token's matching pair of activation codes is
// broadcast to every lane: one multiply-add then serves all the tile's
// rows, the block's scaling is one multiply-add per token for all of them,
// and a token's outputs (consecutive rows) are one store. (NEON's
// ReorderWidenMulAccumulate pairs lane k with lane k + N/2 instead, so ARM
// keeps the tiles above.) q4 weights only. Pair j of a block holds, in the
// order both sides' codes are stored, the low nibbles of bytes 2j, 2j + 1
// (elements 4j, 4j + 2) for j < 8, else their high nibbles.
constexpr int64_t kPairs = kActivationBlock / 2;
// Fewer tokens would not pay for unpacking the tile.
constexpr int64_t kRowLaneMinTokens = 4;

struct RowLaneTile {
  int64_t width = 0;           // rows per tile: a whole number of vectors
  std::vector<int32_t> pairs;  // [block][kPairs][width]
  std::vector<float> scales;   // [block][width]
};

#if HWY_TARGET <= HWY_AVX2
// v[r] lane j -> v[j] lane r, for eight vectors of eight i32 lanes.
HWY_INLINE void Transpose8(hn::Vec<D32> v[8]) {
  const D32 d;
  const hn::Repartition<int64_t, D32> d64;
  hn::Vec<D32> t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = hn::InterleaveLower(d, v[i], v[i + 1]);
    t[i + 1] = hn::InterleaveUpper(d, v[i], v[i + 1]);
  }
  // u[4h + 2k + e]: lanes 2k + e (low half) and 2k + e + 4 (high half) of
  // rows 4h .. 4h + 3.
  for (int h = 0; h < 2; ++h) {
    for (int k = 0; k < 2; ++k) {
      const auto x = hn::BitCast(d64, t[4 * h + k]);
      const auto y = hn::BitCast(d64, t[4 * h + 2 + k]);
      u[4 * h + 2 * k] = hn::BitCast(d, hn::InterleaveLower(d64, x, y));
      u[4 * h + 2 * k + 1] = hn::BitCast(d, hn::InterleaveUpper(d64, x, y));
    }
  }
  for (int j = 0; j < 4; ++j) {
    v[j] = hn::ConcatLowerLower(d, u[4 + j], u[j]);
    v[j + 4] = hn::ConcatUpperUpper(d, u[4 + j], u[j]);
  }
}

// Pairs of eight rows from `row` (nullptr: a zero row past the matrix):
// a block's low nibbles minus the zero point, read as i32, are its pairs
// 0-7 and its high nibbles pairs 8-15; a transpose puts rows in lanes.
void UnpackEightRows(const Call& c, const uint8_t* const row[8],
                     const int16_t* const zeros[8], int64_t width,
                     int32_t* pairs) {
  const D16 d16;
  const D32 d32;
  const hn::Rebind<uint8_t, D16> du8;
  const auto nibble = hn::Set(d16, 15);
  for (int64_t b = 0; b < c.full_blocks; ++b) {
    hn::Vec<D32> low[8], high[8];
    for (int i = 0; i < 8; ++i) {
      if (row[i] == nullptr) {
        low[i] = high[i] = hn::Zero(d32);
        continue;
      }
      const auto v = hn::PromoteTo(d16, hn::LoadU(du8, row[i] + kHalf * b));
      const auto zero = hn::Set(d16, zeros[i][b]);
      low[i] = hn::BitCast(d32, hn::Sub(hn::And(v, nibble), zero));
      high[i] = hn::BitCast(d32, hn::Sub(hn::ShiftRight<4>(v), zero));
    }
    Transpose8(low);
    Transpose8(high);
    int32_t* out = pairs + b * kPairs * width;
    for (int j = 0; j < 8; ++j) {
      hn::StoreU(low[j], d32, out + j * width);
      hn::StoreU(high[j], d32, out + (kPairs / 2 + j) * width);
    }
  }
}
#endif

void UnpackRowLaneTile(const Call& c, int64_t r0, int64_t rows, int64_t width,
                       RowLaneTile* tile) {
  static thread_local std::vector<int16_t> zeros;
  const quant::RowLayout& layout = *c.layout;
  const int64_t blocks = c.full_blocks;
  const int64_t blocks_per_group = layout.format.group_size / kActivationBlock;
  tile->width = width;
  tile->pairs.resize(static_cast<size_t>(blocks * kPairs * width));
  // Rows past `rows` are zero: their lanes compute 0 and are not stored.
  tile->scales.assign(static_cast<size_t>(blocks * width), 0.0f);
  zeros.resize(static_cast<size_t>(rows * blocks));
  const DF df;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  HWY_ALIGN float scale[hn::MaxLanes(DF())];
  HWY_ALIGN float zero[hn::MaxLanes(DF())];
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* row = c.w->Row(r0 + r);
    int64_t b = 0;
    if (blocks_per_group == 1) {
      // A vector of blocks at a time, transposed into the tile's lanes.
      for (; b + lanes <= blocks; b += lanes) {
        hn::Store(LoadBlockScales(layout, row, b), df, scale);
        hn::Store(LoadBlockZeros(layout, row, b), df, zero);
        for (int64_t i = 0; i < lanes; ++i) {
          tile->scales[static_cast<size_t>((b + i) * width + r)] = scale[i];
          zeros[static_cast<size_t>(r * blocks + b + i)] =
              static_cast<int16_t>(zero[i]);
        }
      }
    }
    for (; b < blocks; ++b) {
      const int64_t g = b / blocks_per_group;
      tile->scales[static_cast<size_t>(b * width + r)] =
          quant::GroupScale(layout, row, g);
      zeros[static_cast<size_t>(r * blocks + b)] =
          static_cast<int16_t>(quant::GroupZero(layout, row, g));
    }
  }
#if HWY_TARGET <= HWY_AVX2
  for (int64_t g = 0; g < width; g += 8) {
    const uint8_t* row[8];
    const int16_t* row_zeros[8];
    for (int i = 0; i < 8; ++i) {
      const bool real = g + i < rows;
      row[i] = real ? c.w->Row(r0 + g + i) : nullptr;
      row_zeros[i] = real ? zeros.data() + (g + i) * blocks : nullptr;
    }
    UnpackEightRows(c, row, row_zeros, width, tile->pairs.data() + g);
  }
#else
  std::fill(tile->pairs.begin(), tile->pairs.end(), 0);
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* row = c.w->Row(r0 + r);
    for (int64_t b = 0; b < blocks; ++b) {
      const int zero = zeros[static_cast<size_t>(r * blocks + b)];
      int16_t codes[kActivationBlock];
      const uint8_t* bytes = row + kHalf * b;
      for (int64_t i = 0; i < kHalf; ++i) {
        codes[i] = static_cast<int16_t>((bytes[i] & 0x0F) - zero);
        codes[kHalf + i] = static_cast<int16_t>((bytes[i] >> 4) - zero);
      }
      int32_t* out = tile->pairs.data() + b * kPairs * width + r;
      for (int64_t j = 0; j < kPairs; ++j) {
        std::memcpy(out + j * width, codes + 2 * j, sizeof(int32_t));
      }
    }
  }
#endif
}

#if HWY_TARGET == HWY_AVX2
// Half a block of the 16-row x 6-token tile (kPairs / 2 pair steps) in fixed
// registers. Each step loads pair j of 16 rows into ymm12/13 (the tile is 16
// i32 wide: 64 bytes a pair), then per token broadcasts its two codes into
// ymm14 and adds two vpmaddwd products to that token's sums. `code` is token
// 0's first code pair; tokens are `stride` bytes apart, so tokens 3-5 are
// addressed from r11 = code + 3 * stride.
//
// Why assembly: GCC 12 spills some of the twelve sums of this loop written
// with intrinsics (it hoists the six broadcasts, or allocates a second copy
// of the loop badly), and spilled sums chain through store forwarding; its
// address arithmetic also cost a quarter of the loop's instructions. On Zen
// 3 this took the 2048x2048x512 q4 kernel from 93 to 119 GFLOP/s (best of
// four alternating runs) and the 1.24B model's pp512 by 17-20%.
HWY_INLINE void RowLaneHalfBlock16x6(const int32_t* w, const int16_t* code,
                                     int64_t stride, hn::Vec<D32> (&s)[6][2]) {
  const int32_t* const end = w + 16 * (kPairs / 2);
  // clang-format off
#define LLMPACK_ROW_LANE_TOKEN(t, address)             \
  "vpbroadcastd " address ", %%ymm14\n\t"              \
  "vpmaddwd %%ymm14, %%ymm12, %%ymm15\n\t"              \
  "vpaddd %%ymm15, %[s" #t "0], %[s" #t "0]\n\t"        \
  "vpmaddwd %%ymm14, %%ymm13, %%ymm14\n\t"              \
  "vpaddd %%ymm14, %[s" #t "1], %[s" #t "1]\n\t"
  asm("lea (%[c],%[cs],2), %%r11\n\t"
      "add %[cs], %%r11\n\t"
      "1:\n\t"
      "vmovdqu (%[w]), %%ymm12\n\t"
      "vmovdqu 32(%[w]), %%ymm13\n\t"
      LLMPACK_ROW_LANE_TOKEN(0, "(%[c])")
      LLMPACK_ROW_LANE_TOKEN(1, "(%[c],%[cs],1)")
      LLMPACK_ROW_LANE_TOKEN(2, "(%[c],%[cs],2)")
      LLMPACK_ROW_LANE_TOKEN(3, "(%%r11)")
      LLMPACK_ROW_LANE_TOKEN(4, "(%%r11,%[cs],1)")
      LLMPACK_ROW_LANE_TOKEN(5, "(%%r11,%[cs],2)")
      "add $64, %[w]\n\t"
      "add $4, %[c]\n\t"
      "add $4, %%r11\n\t"
      "cmp %[end], %[w]\n\t"
      "jne 1b\n\t"
      : [s00] "+x"(s[0][0].raw), [s01] "+x"(s[0][1].raw),
        [s10] "+x"(s[1][0].raw), [s11] "+x"(s[1][1].raw),
        [s20] "+x"(s[2][0].raw), [s21] "+x"(s[2][1].raw),
        [s30] "+x"(s[3][0].raw), [s31] "+x"(s[3][1].raw),
        [s40] "+x"(s[4][0].raw), [s41] "+x"(s[4][1].raw),
        [s50] "+x"(s[5][0].raw), [s51] "+x"(s[5][1].raw), [w] "+r"(w),
        [c] "+r"(code)
      : [cs] "r"(stride), [end] "r"(end)
      : "r11", "xmm12", "xmm13", "xmm14", "xmm15", "cc", "memory");
#undef LLMPACK_ROW_LANE_TOKEN
  // clang-format on
}
#endif

// Adds block b's products to `dots` (and `upper`, see RowLaneTokens): pair j
// of the tile (`pairs`, `width` i32 apart) times each token's code pair at
// `even` + 2 * j, plus `to_odd` for the second half of the pairs.
template <int R, int T>
HWY_INLINE void AccumulateBlock(const int32_t* pairs, int64_t width,
                                const int16_t* const (&codes)[T], int64_t even,
                                int64_t to_odd, hn::Vec<D32> (&dots)[T][R],
                                hn::Vec<D32> (&upper)[T][R]) {
#if HWY_TARGET == HWY_AVX2
  if constexpr (R == 2 && T == 6) {
    HWY_DASSERT(width == 16);  // two 8-lane vectors of rows
    const int64_t stride = (codes[1] - codes[0]) * 2;  // bytes
    RowLaneHalfBlock16x6(pairs, codes[0] + even, stride, dots);
    RowLaneHalfBlock16x6(pairs + (kPairs / 2) * width,
                         codes[0] + even + 2 * (kPairs / 2) + to_odd, stride,
                         dots);
    return;
  }
#endif
  const D16 d16;
  const D32 d32;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d32));
  // Not unrolled: GCC (12) reassociated an unrolled chain of adds into a
  // tree whose products it spilled.
#pragma GCC unroll 1
  for (int64_t j = 0; j < kPairs; ++j) {
    const int64_t at = even + 2 * j + (j >= kPairs / 2 ? to_odd : 0);
    hn::Vec<D16> w[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      w[r] = hn::BitCast(d16, hn::LoadU(d32, pairs + j * width + r * lanes));
    }
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      int32_t pair;
      std::memcpy(&pair, codes[t] + at, sizeof(pair));
      const auto broadcast = hn::BitCast(d16, hn::Set(d32, pair));
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        dots[t][r] = hn::ReorderWidenMulAccumulate(d32, w[r], broadcast,
                                                   dots[t][r], upper[t][r]);
      }
    }
  }
}

// Tokens [t0, t0 + T) times the tile's rows [r0, r0 + rows), R vectors of
// rows. R = 2, T = 6 keeps 12 i32 sums, two weight vectors and a broadcast
// in AVX2's 16 registers: each weight load serves six tokens and each
// broadcast two vectors, so the loop is mostly vpmaddwd and vpaddd. The f32
// sums live in L1 and are touched once per block.
template <int R, int T>
HWY_NOINLINE void RowLaneTokens(const Call& c, const RowLaneTile& tile,
                                int64_t r0, int64_t rows, int64_t t0) {
  const QuantizedActivations& a = *c.a;
  const D32 d32;
  const DF df;
  constexpr int64_t kLanes = static_cast<int64_t>(hn::MaxLanes(DF()));
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d32));
  const int64_t width = tile.width;
  const int16_t* codes[T];
  const float* act_scales[T];
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t) {
    codes[t] = a.Codes(t0 + t);
    act_scales[t] = a.Scales(t0 + t);
  }
  HWY_ALIGN float acc[T][R * kLanes];
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t) {
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) hn::Store(hn::Zero(df), df, acc[t] + r * lanes);
  }
  for (int64_t b = 0; b < c.full_blocks; ++b) {
    const int64_t s = b / 4;
    const int64_t m = std::min<int64_t>(4, a.blocks - 4 * s);
    const int64_t even = 4 * s * kActivationBlock + kHalf * (b % 4);
    // Pairs j < kPairs / 2 meet the block's even codes, the rest its odd
    // codes: code index even + 2 * j, plus `to_odd` for the second half.
    const int64_t to_odd = kHalf * m - kHalf;
    const int32_t* pairs = tile.pairs.data() + b * kPairs * width;
    // x86 vpmaddwd adds both products into `dots`; EMU128 (also compiled
    // on x86) puts the odd lanes' products into `upper`.
    hn::Vec<D32> dots[T][R], upper[T][R];
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        dots[t][r] = hn::Zero(d32);
        upper[t][r] = hn::Zero(d32);
      }
    }
    AccumulateBlock<R, T>(pairs, width, codes, even, to_odd, dots, upper);
    hn::Vec<DF> scale[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      scale[r] = hn::LoadU(df, tile.scales.data() + b * width + r * lanes);
    }
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      const auto sa = hn::Set(df, act_scales[t][b]);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        float* sum = acc[t] + r * lanes;
        hn::Store(
            hn::MulAdd(hn::ConvertTo(df, hn::Add(dots[t][r], upper[t][r])),
                       hn::Mul(scale[r], sa), hn::Load(df, sum)),
            df, sum);
      }
    }
  }
  // Whole vectors of rows are stored directly: std::copy became a memmove
  // call per token, 2% of a pp512 profile.
  const bool whole = rows == R * lanes;
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t) {
    float* out = c.out + (t0 + t) * c.out_stride + r0;
    if (whole) {
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        hn::StoreU(hn::Load(df, acc[t] + r * lanes), df, out + r * lanes);
      }
    } else {
      std::copy(acc[t], acc[t] + rows, out);
    }
  }
}

// Every token of the call times one unpacked tile, six tokens at a time.
template <int R>
void SweepTokens(const Call& c, const RowLaneTile& tile, int64_t r0,
                 int64_t rows) {
  constexpr int kTokens = 6;
  const int64_t tokens = c.a->tokens;
  int64_t t = 0;
  for (; t + kTokens <= tokens; t += kTokens) {
    RowLaneTokens<R, kTokens>(c, tile, r0, rows, t);
  }
  switch (tokens - t) {
    case 5:
      RowLaneTokens<R, 5>(c, tile, r0, rows, t);
      break;
    case 4:
      RowLaneTokens<R, 4>(c, tile, r0, rows, t);
      break;
    case 3:
      RowLaneTokens<R, 3>(c, tile, r0, rows, t);
      break;
    case 2:
      RowLaneTokens<R, 2>(c, tile, r0, rows, t);
      break;
    case 1:
      RowLaneTokens<R, 1>(c, tile, r0, rows, t);
      break;
    default:
      break;
  }
}

// The unpack reads its rows once per call, from DRAM, and stalled on the
// first touch of each line (31% of UnpackEightRows' samples on the load).
// The next tile's rows are requested into L2 before the current tile's
// sweep over the tokens, which takes far longer than fetching them.
void PrefetchRowsToL2(const Call& c, int64_t begin, int64_t end) {
  const int64_t bytes = c.layout->row_bytes;
  for (int64_t r = begin; r < end; ++r) {
    const uint8_t* row = c.w->Row(r);
    for (int64_t at = 0; at < bytes; at += 64) {
      __builtin_prefetch(row + at, /*rw=*/0, /*locality=*/2);
    }
  }
}

void RowLaneMatMul(const Call& c, int64_t row_begin, int64_t row_end) {
  static thread_local RowLaneTile tile;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(D32()));
  int64_t r0 = row_begin;
  // Two vectors of rows while whole ones remain, then one at a time.
  for (; r0 + 2 * lanes <= row_end; r0 += 2 * lanes) {
    UnpackRowLaneTile(c, r0, 2 * lanes, 2 * lanes, &tile);
    PrefetchRowsToL2(c, r0 + 2 * lanes, std::min(row_end, r0 + 4 * lanes));
    SweepTokens<2>(c, tile, r0, 2 * lanes);
  }
  for (; r0 < row_end; r0 += lanes) {
    const int64_t rows = std::min(lanes, row_end - r0);
    UnpackRowLaneTile(c, r0, rows, lanes, &tile);
    SweepTokens<1>(c, tile, r0, rows);
  }
}
#endif  // HWY_ARCH_X86

template <bool kQ4>
void Run(const Call& c, int64_t row_begin, int64_t row_end) {
  const QuantizedActivations& a = *c.a;
  if (a.tokens == 1) {
    // Decode: four independent rows share each activation load and keep
    // the multiply chains busy.
    Call decode = c;
    decode.prefetch_end = c.w->Row(row_end);
    if (kQ4 && kDecodeQuads && c.full_blocks % 8 == 0) {
      DecodeQuads(decode, row_begin, row_end);
      return;
    }
    int64_t r = row_begin;
    for (; r + 4 <= row_end; r += 4) Tile<kQ4, 4, 1>(decode, r, 0);
    for (; r < row_end; ++r) Tile<kQ4, 1, 1>(decode, r, 0);
    return;
  }
#if HWY_ARCH_X86
  // q4 only: q8 prompts keep the decode's per-row arithmetic, which
  // model tests hold to 1e-5 of token-by-token decode.
  if constexpr (kQ4) {
    if (a.tokens >= kRowLaneMinTokens && c.full_blocks == a.blocks) {
      RowLaneMatMul(c, row_begin, row_end);
      return;
    }
  }
#endif
  // Several tokens: a chunk whose codes fit in L2 (~256 KiB) is swept
  // against every row of the range, two rows at a time.
  const int64_t token_bytes =
      static_cast<int64_t>(sizeof(int16_t)) * a.blocks * kActivationBlock;
  const int64_t chunk =
      std::max<int64_t>(2, (int64_t{256} << 10) / token_bytes / 2 * 2);
  for (int64_t t0 = 0; t0 < a.tokens; t0 += chunk) {
    const int64_t t1 = std::min(a.tokens, t0 + chunk);
    int64_t r = row_begin;
    for (; r + 2 <= row_end; r += 2) TokenTiles<kQ4, 2>(c, r, t0, t1);
    for (; r < row_end; ++r) TokenTiles<kQ4, 1>(c, r, t0, t1);
  }
}

void QuantMatMul(const QuantizedActivations& a, const WeightMatrix& w,
                 int64_t row_begin, int64_t row_end, float* out,
                 int64_t out_stride) {
  Call c;
  c.a = &a;
  c.w = &w;
  c.layout = &w.layout;
  c.full_blocks = w.layout.cols / kActivationBlock;
  c.out = out;
  c.out_stride = out_stride;
  if (w.dtype == DType::kQ4) {
    Run<true>(c, row_begin, row_end);
  } else {
    Run<false>(c, row_begin, row_end);
  }
}

#endif  // HWY_TARGET == HWY_SCALAR

}  // namespace HWY_NAMESPACE
}  // namespace llmpack::runtime
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace llmpack::runtime {

HWY_EXPORT(QuantMatMul);

void QuantMatMulHighway(const QuantizedActivations& a, const WeightMatrix& w,
                        int64_t row_begin, int64_t row_end, float* out,
                        int64_t out_stride) {
  HWY_DYNAMIC_DISPATCH(QuantMatMul)(a, w, row_begin, row_end, out, out_stride);
}

}  // namespace llmpack::runtime
#endif  // HWY_ONCE
