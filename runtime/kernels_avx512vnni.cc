// The quantized matmul with AVX-512 VNNI (vpdpbusd: 64 u8 x s8 products
// summed into 16 i32 lanes per instruction). Highway 1.0.3 has no VNNI op,
// so these functions carry their own target attribute and are chosen at run
// time (Avx512VnniQuantMatMul) by the one dispatch point in kernels_hwy.cc;
// nothing here runs on a CPU without the extension, and other architectures
// compile only the nullptr stub.
//
// Layout of one step ("superblock"): q4 reads 64 code bytes = 128 elements =
// four activation blocks; the low nibbles meet the even elements and the high
// nibbles the odd ones (activations are in q4 order), so i32 lanes 4k..4k+3
// belong to block k. q8 reads 64 codes = two blocks (lanes 8k..8k+7); its
// signed codes take the signed operand, and the activations' high plane is
// offset to unsigned (high + 128) with 128 * sum(q) subtracted again. The
// 15-bit activation codes take two products per byte: 128 * (q . high) +
// q . low. Each block's lanes are scaled by scale[g] * sa[b] and summed in
// f32; the zero-point term zero[g] * scale[g] * sa[b] * sum(a) is summed
// separately per row, 16 blocks at a time.
#include "runtime/quant_matmul.h"

#if defined(__x86_64__) && defined(__GNUC__)

#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "runtime/avx512vnni_target.h"

namespace llmpack::runtime {
namespace {

// What every tile needs to know about one matmul call.
struct Call {
  const QuantizedActivations* a;
  const WeightMatrix* w;
  const quant::RowLayout* layout;
  int64_t group;
  int64_t full_super;  // superblocks whose blocks are all full
  int64_t tail_block;  // first block left to the scalar reference
  bool zero_term;      // zero points present, or symmetric q4 (zero 8)
  bool bf16;           // scale dtype
  float* out;
  int64_t out_stride;
  // Decode: the bytes of the rows after the current tile, fetched into the
  // cache while the tile computes (see Tile).
  const uint8_t* prefetch_end = nullptr;
};

// Decode streams every weight byte once from memory. The hardware
// prefetcher alone left the q4 matvec far below the read bandwidth, as did
// prefetching each row a few lines ahead; a decode tile instead prefetches
// the whole next tile (the next R rows, contiguous) spread over its own
// superblocks, so one tile's compute time covers the memory latency.
template <bool kQ4>
constexpr int64_t kSuperBlocks = kQ4 ? 4 : 2;
template <bool kQ4>
constexpr int64_t kActivationBytes = kQ4 ? 128 : 64;  // per superblock

// How a superblock's weight scales are found: one f16 or bf16 scale per
// block (group 32, the common case, decoded as a vector), or by group index.
enum class ScaleMode { kF16PerBlock, kBF16PerBlock, kByGroup };

// Scales of superblock s's blocks in lanes 0..kSuperBlocks-1 (others 0).
template <bool kQ4, ScaleMode kMode>
LLMPACK_AVX512VNNI inline __m128 BlockScales(const Call& c, const uint8_t* row,
                                             int64_t s) {
  const int64_t b0 = s * kSuperBlocks<kQ4>;
  if constexpr (kMode != ScaleMode::kByGroup) {
    const uint8_t* p = row + c.layout->scale_offset + 2 * b0;
    __m128i halves;
    if constexpr (kQ4) {
      halves = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
    } else {
      uint32_t two;
      std::memcpy(&two, p, 4);
      halves = _mm_cvtsi32_si128(static_cast<int>(two));
    }
    if constexpr (kMode == ScaleMode::kBF16PerBlock) {
      return _mm_castsi128_ps(_mm_slli_epi32(_mm_cvtepu16_epi32(halves), 16));
    } else {
      return _mm_cvtph_ps(halves);
    }
  } else {
    alignas(16) float v[4] = {0, 0, 0, 0};
    for (int64_t k = 0; k < kSuperBlocks<kQ4>; ++k) {
      v[k] = quant::GroupScale(*c.layout, row,
                               (b0 + k) * kActivationBlock / c.group);
    }
    return _mm_load_ps(v);
  }
}

// scale[g(b)] * zero[g(b)] of one row's blocks [b, b + 16) (lanes past
// tail_block 0): the weight side of the zero-point term.
template <bool kQ4>
LLMPACK_AVX512VNNI inline __m512 ZeroScales(const Call& c, const uint8_t* row,
                                            int64_t b) {
  const quant::RowLayout& layout = *c.layout;
  const int64_t n = std::min<int64_t>(16, c.tail_block - b);
  const __mmask16 mask = static_cast<__mmask16>((1u << n) - 1);
  if (c.group != kActivationBlock) {
    alignas(64) float v[16] = {};
    for (int64_t k = 0; k < n; ++k) {
      const int64_t g = (b + k) * kActivationBlock / c.group;
      v[k] = quant::GroupScale(layout, row, g) *
             static_cast<float>(quant::GroupZero(layout, row, g));
    }
    return _mm512_load_ps(v);
  }
  const __m256i halves =
      _mm256_maskz_loadu_epi16(mask, row + layout.scale_offset + 2 * b);
  const __m512 scale = c.bf16 ? _mm512_castsi512_ps(_mm512_slli_epi32(
                                    _mm512_cvtepu16_epi32(halves), 16))
                              : _mm512_cvtph_ps(halves);
  if (!layout.format.zero_point) {
    return _mm512_mul_ps(
        scale, _mm512_set1_ps(static_cast<float>(layout.ImplicitZero())));
  }
  const uint8_t* zeros = row + layout.zp_offset;
  __m512i zero;
  if constexpr (kQ4) {
    // b is a multiple of 16: its nibbles start a byte.
    const __m128i low_nibble = _mm_set1_epi8(0x0F);
    const __mmask16 byte_mask =
        static_cast<__mmask16>((1u << ((n + 1) / 2)) - 1);
    const __m128i packed = _mm_maskz_loadu_epi8(byte_mask, zeros + b / 2);
    const __m128i bytes =
        _mm_unpacklo_epi8(_mm_and_si128(packed, low_nibble),
                          _mm_and_si128(_mm_srli_epi16(packed, 4), low_nibble));
    zero = _mm512_cvtepu8_epi32(bytes);
  } else {
    zero = _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(mask, zeros + b));
  }
  return _mm512_mul_ps(scale, _mm512_cvtepi32_ps(zero));
}

// Rows [r0, r0 + R) x tokens [t0, t0 + T): each superblock of a weight row
// is loaded and unpacked once and used for all T tokens.
template <bool kQ4, ScaleMode kMode, int R, int T>
LLMPACK_AVX512VNNI void Tile(const Call& c, int64_t r0, int64_t t0) {
  const QuantizedActivations& a = *c.a;
  const uint8_t* rows[R];
#pragma GCC unroll 4
  for (int i = 0; i < R; ++i) rows[i] = c.w->Row(r0 + i);
  const int8_t* highs[T];
  const int8_t* lows[T];
  const float* act_scales[T];
#pragma GCC unroll 4
  for (int t = 0; t < T; ++t) {
    highs[t] = a.High(t0 + t);
    lows[t] = a.Low(t0 + t);
    act_scales[t] = a.Scales(t0 + t);
  }
  // Lane -> block of the superblock.
  const __m512i spread =
      kQ4 ? _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3)
          : _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  const __m512i low_nibble = _mm512_set1_epi8(0x0F);
  const __m512i ones = _mm512_set1_epi8(1);
  const __m512i sign_flip = _mm512_set1_epi8(static_cast<char>(0x80));
  const __m512i zero = _mm512_setzero_si512();
  __m512 acc[R][T];
#pragma GCC unroll 4
  for (int i = 0; i < R; ++i) {
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) acc[i][t] = _mm512_setzero_ps();
  }
  // Lines of the next tile to prefetch per superblock (decode only).
  const uint8_t* next = rows[R - 1] + c.layout->row_bytes;
  const int64_t prefetch_lines = DecodePrefetchLines(
      next, c.prefetch_end, R * c.layout->row_bytes, c.full_super);
  for (int64_t s = 0; s < c.full_super; ++s) {
    for (int64_t k = 0; k < prefetch_lines; ++k) {
      _mm_prefetch(
          reinterpret_cast<const char*>(next + 64 * (s * prefetch_lines + k)),
          _MM_HINT_T0);
    }
    __m512i w0[R], w1[R];
    __m128 scale[R];
#pragma GCC unroll 4
    for (int i = 0; i < R; ++i) {
      const __m512i v = _mm512_loadu_si512(rows[i] + 64 * s);
      if constexpr (kQ4) {
        w0[i] = _mm512_and_si512(v, low_nibble);
        w1[i] = _mm512_and_si512(_mm512_srli_epi16(v, 4), low_nibble);
      } else {
        w0[i] = v;
        // 128 * (sum of each lane's four codes), removed from the offset dot.
        w1[i] = _mm512_slli_epi32(_mm512_dpbusd_epi32(zero, ones, v), 7);
      }
      scale[i] = BlockScales<kQ4, kMode>(c, rows[i], s);
    }
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) {
      const int64_t offset = s * kActivationBytes<kQ4>;
      const int8_t* high = highs[t] + offset;
      const int8_t* low = lows[t] + offset;
      const __m128 sa = _mm_loadu_ps(act_scales[t] + s * kSuperBlocks<kQ4>);
      __m512i h0, h1, l0, l1;
      if constexpr (kQ4) {
        h0 = _mm512_loadu_si512(high);
        h1 = _mm512_loadu_si512(high + 64);
        l0 = _mm512_loadu_si512(low);
        l1 = _mm512_loadu_si512(low + 64);
      } else {
        h0 = _mm512_xor_si512(_mm512_loadu_si512(high), sign_flip);
        l0 = _mm512_loadu_si512(low);
      }
#pragma GCC unroll 4
      for (int i = 0; i < R; ++i) {
        // d = 128 * (codes . high) + codes . low, exact in every lane.
        __m512i d;
        if constexpr (kQ4) {
          d = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(zero, w0[i], h0), w1[i],
                                  h1);
          d = _mm512_slli_epi32(d, 7);
          d = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(d, w0[i], l0), w1[i], l1);
        } else {
          d = _mm512_sub_epi32(_mm512_dpbusd_epi32(zero, h0, w0[i]), w1[i]);
          d = _mm512_dpbusd_epi32(_mm512_slli_epi32(d, 7), l0, w0[i]);
        }
        const __m512 lane_scale = _mm512_permutexvar_ps(
            spread, _mm512_zextps128_ps512(_mm_mul_ps(scale[i], sa)));
        acc[i][t] =
            _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), lane_scale, acc[i][t]);
      }
    }
  }
  // The zero-point term, 16 blocks at a time: the row's scale * zero per
  // block times each token's scaled activation sums, subtracted lane-wise
  // so one reduction gives the dot.
  if (c.zero_term) {
    for (int64_t b = 0; b < c.tail_block; b += 16) {
      const __mmask16 mask = static_cast<__mmask16>(
          (1u << std::min<int64_t>(16, c.tail_block - b)) - 1);
      __m512 sums[T];
#pragma GCC unroll 4
      for (int t = 0; t < T; ++t) {
        sums[t] = _mm512_maskz_loadu_ps(mask, a.ScaledSums(t0 + t) + b);
      }
#pragma GCC unroll 4
      for (int i = 0; i < R; ++i) {
        const __m512 zero_scales = ZeroScales<kQ4>(c, rows[i], b);
#pragma GCC unroll 4
        for (int t = 0; t < T; ++t) {
          acc[i][t] = _mm512_fnmadd_ps(zero_scales, sums[t], acc[i][t]);
        }
      }
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < R; ++i) {
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) {
      float sum = _mm512_reduce_add_ps(acc[i][t]);
      if (c.tail_block < a.blocks) {
        sum += QuantizedDotReference(a, t0 + t, *c.layout, rows[i],
                                     c.tail_block, a.blocks);
      }
      c.out[(t0 + t) * c.out_stride + r0 + i] = sum;
    }
  }
}

// Tokens [t_begin, t_end) of rows [r0, r0 + R), four tokens at a time.
template <bool kQ4, ScaleMode kMode, int R>
LLMPACK_AVX512VNNI void TokenTiles(const Call& c, int64_t r0, int64_t t_begin,
                                   int64_t t_end) {
  int64_t t = t_begin;
  for (; t + 4 <= t_end; t += 4) Tile<kQ4, kMode, R, 4>(c, r0, t);
  switch (t_end - t) {
    case 3:
      Tile<kQ4, kMode, R, 3>(c, r0, t);
      break;
    case 2:
      Tile<kQ4, kMode, R, 2>(c, r0, t);
      break;
    case 1:
      Tile<kQ4, kMode, R, 1>(c, r0, t);
      break;
    default:
      break;
  }
}

template <bool kQ4, ScaleMode kMode>
LLMPACK_AVX512VNNI void Run(const Call& c, int64_t row_begin, int64_t row_end) {
  const int64_t tokens = c.a->tokens;
  if (tokens == 1) {
    // Decode: four independent rows keep the FMA chains and loads busy.
    Call decode = c;
    decode.prefetch_end = c.w->Row(row_end);
    int64_t r = row_begin;
    for (; r + 4 <= row_end; r += 4) Tile<kQ4, kMode, 4, 1>(decode, r, 0);
    for (; r < row_end; ++r) Tile<kQ4, kMode, 1, 1>(decode, r, 0);
    return;
  }
  // Prefill: a chunk of tokens whose codes fit in L2 (~256 KiB) is swept
  // against every row of the range, two rows at a time.
  const int64_t token_bytes = 2 * c.a->blocks * kActivationBlock;
  const int64_t chunk =
      std::max<int64_t>(4, (int64_t{256} << 10) / token_bytes / 4 * 4);
  for (int64_t t0 = 0; t0 < tokens; t0 += chunk) {
    const int64_t t1 = std::min(tokens, t0 + chunk);
    int64_t r = row_begin;
    for (; r + 2 <= row_end; r += 2) TokenTiles<kQ4, kMode, 2>(c, r, t0, t1);
    for (; r < row_end; ++r) TokenTiles<kQ4, kMode, 1>(c, r, t0, t1);
  }
}

template <bool kQ4>
void RunWithScales(const Call& c, int64_t row_begin, int64_t row_end) {
  if (c.group != kActivationBlock) {
    Run<kQ4, ScaleMode::kByGroup>(c, row_begin, row_end);
  } else if (c.bf16) {
    Run<kQ4, ScaleMode::kBF16PerBlock>(c, row_begin, row_end);
  } else {
    Run<kQ4, ScaleMode::kF16PerBlock>(c, row_begin, row_end);
  }
}

void QuantMatMulAvx512Vnni(const QuantizedActivations& a, const WeightMatrix& w,
                           int64_t row_begin, int64_t row_end, float* out,
                           int64_t out_stride) {
  const quant::RowLayout& layout = w.layout;
  const int64_t group = layout.format.group_size;
  const bool q4 = w.dtype == DType::kQ4;
  Call c;
  c.a = &a;
  c.w = &w;
  c.layout = &layout;
  c.group = group;
  const int64_t super_elements = (q4 ? 4 : 2) * kActivationBlock;
  c.full_super = layout.cols / super_elements;
  c.tail_block = c.full_super * (q4 ? 4 : 2);
  c.zero_term = layout.format.zero_point || q4;
  c.bf16 = layout.format.scale_dtype == DType::kBF16;
  c.out = out;
  c.out_stride = out_stride;
  if (q4) {
    RunWithScales<true>(c, row_begin, row_end);
  } else {
    RunWithScales<false>(c, row_begin, row_end);
  }
}

}  // namespace

QuantMatMulFn Avx512VnniQuantMatMul() {
  static const bool supported = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512vnni");
  }();
  return supported ? &QuantMatMulAvx512Vnni : nullptr;
}

}  // namespace llmpack::runtime

#else  // not x86-64 with GCC/Clang

namespace llmpack::runtime {

QuantMatMulFn Avx512VnniQuantMatMul() { return nullptr; }

}  // namespace llmpack::runtime

#endif
