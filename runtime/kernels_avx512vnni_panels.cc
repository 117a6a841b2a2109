// Prompts times q4 weights with AVX-512 VNNI, on token panels
// (quant_matmul.h, "Token panels"). Like kernels_avx512vnni.cc these
// functions carry their own target attribute and are reached only through
// the dispatch in kernels_hwy.cc, which asks Avx512VnniPanelKernels() first;
// other architectures compile only the nullptr stub.
//
// Why panels: the per-token kernel spends about ten instructions per four
// vpdpbusd (unpacking, lane permutes and per-block scaling for one token and
// one row) and ran at ~6% of the int8 peak. Here a vpdpbusd multiplies one
// quad of 16 tokens' codes by four codes of a weight row broadcast to every
// lane (the weight codes minus their zero point, as signed bytes), so a
// block costs 16 vpdpbusd (high and low planes) and five vector
// instructions of combining and scaling for 16 tokens of one row, and the
// weight codes are unpacked to bytes once per row tile and token chunk.
#include "runtime/quant_matmul.h"

#if defined(__x86_64__) && defined(__GNUC__)

#include <immintrin.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

#include "runtime/aligned_bytes.h"
#include "runtime/avx512vnni_target.h"

namespace llmpack::runtime {
namespace {

constexpr int64_t kTokens = ActivationPanels::kTokens;
constexpr int64_t kBlock = kActivationBlock;
// Rows per tile: 8 rows x (high, low) i32 accumulators plus 8 f32 sums and
// the two activation quads fit the 32 vector registers.
constexpr int kTileRows = 8;
// Activation bytes a token chunk may hold: about half of a 1 MiB L2, so the
// chunk stays there while every row tile of the range sweeps it.
constexpr int64_t kChunkBytes = int64_t{512} << 10;
// Blocks per column slice: a row tile is unpacked once per token chunk and
// slice, and a chunk holds kChunkBytes / (slice blocks * 1 KiB) panels. Whole
// rows of the MLP down projection (256 blocks) left room for 2 panels, so
// its weights were unpacked once per 32 tokens; slices of 64 blocks keep 8
// panels (128 tokens) per chunk for every matrix.
constexpr int64_t kSliceBlocks = 64;

// A row tile's weights over one column slice, unpacked for the panel loop:
// for row r and block b of the slice, the block's 32 codes minus the zero point
// of its group, as signed bytes in element order; -128 * (their sum) (the
// high-plane accumulator's start: shifted left by 7 it removes what the +128
// offset of the high plane adds, 16384 * sum); and the group's scale.
struct TileScratch {
  AlignedBytes memory{nullptr, &std::free};
  int64_t capacity_blocks = 0;  // per row
  uint8_t* codes = nullptr;     // [kTileRows][blocks][32]
  int32_t* offset = nullptr;    // [kTileRows][blocks]
  float* scale = nullptr;       // [kTileRows][blocks]
  int32_t* zero = nullptr;      // [blocks]: one row's blocks
  // The groups a row's slice overlaps (at most one per block, plus one).
  int32_t* group_zero = nullptr;
  float* group_scale = nullptr;

  // Throws std::bad_alloc, as a std::vector would, when out of memory.
  void Reserve(int64_t blocks) {
    if (blocks <= capacity_blocks) return;
    const size_t per_row = static_cast<size_t>(blocks) * (kBlock + 8);
    memory = AllocateAligned(
        kTileRows * per_row + 12 * static_cast<size_t>(blocks + 1), 64);
    if (memory == nullptr) throw std::bad_alloc();
    capacity_blocks = blocks;
    codes = memory.get();
    offset = reinterpret_cast<int32_t*>(codes + kTileRows * blocks * kBlock);
    scale = reinterpret_cast<float*>(offset + kTileRows * blocks);
    zero = reinterpret_cast<int32_t*>(scale + kTileRows * blocks);
    group_zero = zero + blocks;
    group_scale = reinterpret_cast<float*>(group_zero + blocks + 1);
  }
};

// The zero point and scale of a row's groups [g_begin, g_end), 16 groups at
// a time: zero[g - g_begin], scale[g - g_begin].
LLMPACK_AVX512VNNI void GroupParams(const quant::RowLayout& layout,
                                    const uint8_t* row, int64_t g_begin,
                                    int64_t g_end, int32_t* zero,
                                    float* scale) {
  const bool bf16 = layout.format.scale_dtype == DType::kBF16;
  const uint8_t* scales = row + layout.scale_offset;
  const uint8_t* zeros = row + layout.zp_offset;
  const __m128i low_nibble = _mm_set1_epi8(0x0F);
  const __m512i implicit_zero = _mm512_set1_epi32(layout.ImplicitZero());
  int64_t g = g_begin;
  // An odd first group shares its zero point byte with the one before.
  for (; g < g_end && g % 2 != 0; ++g) {
    zero[g - g_begin] = quant::GroupZero(layout, row, g);
    scale[g - g_begin] = quant::GroupScale(layout, row, g);
  }
  for (; g + 16 <= g_end; g += 16) {
    const __m256i halves =
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(scales + 2 * g));
    _mm512_storeu_ps(scale + (g - g_begin),
                     bf16 ? _mm512_castsi512_ps(_mm512_slli_epi32(
                                _mm512_cvtepu16_epi32(halves), 16))
                          : _mm512_cvtph_ps(halves));
    __m512i z = implicit_zero;
    if (layout.format.zero_point) {
      // Zero point j is nibble j: low nibble of byte j / 2 when j is even.
      const __m128i packed =
          _mm_loadl_epi64(reinterpret_cast<const __m128i*>(zeros + g / 2));
      const __m128i nibbles = _mm_unpacklo_epi8(
          _mm_and_si128(packed, low_nibble),
          _mm_and_si128(_mm_srli_epi16(packed, 4), low_nibble));
      z = _mm512_cvtepu8_epi32(nibbles);
    }
    _mm512_storeu_si512(zero + (g - g_begin), z);
  }
  for (; g < g_end; ++g) {
    zero[g - g_begin] = quant::GroupZero(layout, row, g);
    scale[g - g_begin] = quant::GroupScale(layout, row, g);
  }
}

// Blocks [b0, b0 + blocks) of `row` into `s` at block index `at`.
LLMPACK_AVX512VNNI void UnpackRow(const quant::RowLayout& layout,
                                  const uint8_t* row, int64_t b0,
                                  int64_t blocks, TileScratch& s, int64_t at) {
  // Each block's zero point and scale first: the codes are stored minus
  // their zero point.
  const int64_t group = layout.format.group_size;
  if (group == kBlock) {
    GroupParams(layout, row, b0, b0 + blocks, s.zero, s.scale + at);
  } else {
    const int64_t g_begin = b0 * kBlock / group;
    const int64_t g_end = ((b0 + blocks) * kBlock + group - 1) / group;
    GroupParams(layout, row, g_begin, g_end, s.group_zero, s.group_scale);
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t g = (b0 + b) * kBlock / group - g_begin;
      s.zero[b] = s.group_zero[g];
      s.scale[at + b] = s.group_scale[g];
    }
  }
  row += b0 * kBlock / 2;
  const __m512i low_nibble = _mm512_set1_epi8(0x0F);
  const __m512i nothing = _mm512_setzero_si512();
  // Blocks 2k and 2k + 1 of four: elements 0-15 of a block are in the low
  // unpack's lane, 16-31 in the high unpack's.
  const __m512i first_two = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11);
  const __m512i last_two = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
  uint8_t* codes = s.codes + at * kBlock;
  int64_t b = 0;
  for (; b + 4 <= blocks; b += 4) {
    // q4 bytes hold element 2j in the low nibble and 2j + 1 in the high.
    const __m512i v = _mm512_loadu_si512(row + 16 * b);
    const __m512i lo = _mm512_and_si512(v, low_nibble);
    const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low_nibble);
    const __m512i even = _mm512_unpacklo_epi8(lo, hi);
    const __m512i odd = _mm512_unpackhi_epi8(lo, hi);
    alignas(64) int64_t sums[8];
    _mm512_store_si512(sums, _mm512_add_epi64(_mm512_sad_epu8(lo, nothing),
                                              _mm512_sad_epu8(hi, nothing)));
    const int32_t* z = s.zero + b;
    const __m512i zero01 =
        _mm512_inserti64x4(_mm512_set1_epi8(static_cast<char>(z[0])),
                           _mm256_set1_epi8(static_cast<char>(z[1])), 1);
    const __m512i zero23 =
        _mm512_inserti64x4(_mm512_set1_epi8(static_cast<char>(z[2])),
                           _mm256_set1_epi8(static_cast<char>(z[3])), 1);
    _mm512_storeu_si512(
        codes + kBlock * b,
        _mm512_sub_epi8(_mm512_permutex2var_epi64(even, first_two, odd),
                        zero01));
    _mm512_storeu_si512(
        codes + kBlock * b + 64,
        _mm512_sub_epi8(_mm512_permutex2var_epi64(even, last_two, odd),
                        zero23));
    for (int k = 0; k < 4; ++k) {
      const int32_t sum = static_cast<int32_t>(sums[2 * k] + sums[2 * k + 1]) -
                          static_cast<int32_t>(kBlock) * z[k];
      s.offset[at + b + k] = -128 * sum;
    }
  }
  for (; b < blocks; ++b) {
    int32_t sum = 0;
    for (int64_t c = 0; c < kBlock; ++c) {
      const int code = quant::CodeAt(layout, row, b * kBlock + c) - s.zero[b];
      codes[kBlock * b + c] = static_cast<uint8_t>(code);
      sum += code;
    }
    s.offset[at + b] = -128 * sum;
  }
}

// Rows [r0, r0 + R) of the tile (unpacked in `s`, row i at index i) times
// panel p over the slice of `blocks` blocks from b0: out[token, r0 + i] for
// the panel's real tokens, stored by the first slice and added to by the
// others.
template <int R>
LLMPACK_AVX512VNNI void PanelTile(const ActivationPanels& a,
                                  const TileScratch& s, int64_t p, int64_t r0,
                                  int64_t b0, int64_t blocks, float* out,
                                  int64_t out_stride) {
  __m512 acc[R];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) acc[i] = _mm512_setzero_ps();
  for (int64_t b = 0; b < blocks; ++b) {
    const uint8_t* act = a.Codes(p, b0 + b);
    __m512i high[R], low[R];
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      high[i] = _mm512_set1_epi32(s.offset[i * blocks + b]);
      low[i] = _mm512_setzero_si512();
    }
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) {
      const __m512i h = _mm512_load_si512(act + 64 * k);
      const __m512i l = _mm512_load_si512(act + 512 + 64 * k);
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) {
        int32_t quad;
        std::memcpy(&quad, s.codes + (i * blocks + b) * kBlock + 4 * k, 4);
        const __m512i w = _mm512_set1_epi32(quad);
        high[i] = _mm512_dpbusd_epi32(high[i], h, w);
        low[i] = _mm512_dpbusd_epi32(low[i], l, w);
      }
    }
    const __m512 sa = _mm512_loadu_ps(a.Scales(p, b0 + b));
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      const int64_t at = i * blocks + b;
      // With q' = q - zero: 128 * (high + 128) . q' + low . q' - 16384 *
      // sum(q') = q' . a = d, exactly.
      const __m512i d = _mm512_add_epi32(_mm512_slli_epi32(high[i], 7), low[i]);
      // float(d) * (scale * sa), the reference's product.
      const __m512 scale = _mm512_mul_ps(_mm512_set1_ps(s.scale[at]), sa);
      acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), scale, acc[i]);
    }
  }
  alignas(64) float result[R][kTokens];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) _mm512_store_ps(result[i], acc[i]);
  const int64_t real = std::min(kTokens, a.tokens - p * kTokens);
  for (int64_t t = 0; t < real; ++t) {
    float* dst = out + (p * kTokens + t) * out_stride + r0;
    if (b0 == 0) {
      for (int i = 0; i < R; ++i) dst[i] = result[i][t];
    } else {
      for (int i = 0; i < R; ++i) dst[i] += result[i][t];
    }
  }
}

using PanelTileFn = void (*)(const ActivationPanels&, const TileScratch&,
                             int64_t, int64_t, int64_t, int64_t, float*,
                             int64_t);
// PanelTile<rows> for a tile of 1..kTileRows rows (the last of a range may
// be short).
constexpr PanelTileFn kPanelTiles[kTileRows] = {
    &PanelTile<1>, &PanelTile<2>, &PanelTile<3>, &PanelTile<4>,
    &PanelTile<5>, &PanelTile<6>, &PanelTile<7>, &PanelTile<8>};

LLMPACK_AVX512VNNI void PanelMatMul(const ActivationPanels& a,
                                    const WeightMatrix& w, int64_t row_begin,
                                    int64_t row_end, float* out,
                                    int64_t out_stride) {
  thread_local TileScratch scratch;
  scratch.Reserve(std::min(a.blocks, kSliceBlocks));
  for (int64_t b0 = 0; b0 < a.blocks; b0 += kSliceBlocks) {
    const int64_t blocks = std::min(kSliceBlocks, a.blocks - b0);
    const int64_t chunk = std::max<int64_t>(
        1, kChunkBytes / (blocks * ActivationPanels::kBlockBytes));
    for (int64_t p0 = 0; p0 < a.panels; p0 += chunk) {
      const int64_t p1 = std::min(a.panels, p0 + chunk);
      for (int64_t r = row_begin; r < row_end; r += kTileRows) {
        const int rows =
            static_cast<int>(std::min<int64_t>(kTileRows, row_end - r));
        for (int i = 0; i < rows; ++i) {
          UnpackRow(w.layout, w.Row(r + i), b0, blocks, scratch, i * blocks);
        }
        // The next tile's rows are fetched while this one computes: unpacking
        // reads them line after line, and each line missed in cache would
        // otherwise stall it for a memory latency.
        const uint8_t* next = w.Row(std::min(r + kTileRows, row_end));
        const uint8_t* next_end = w.Row(std::min(r + 2 * kTileRows, row_end));
        for (const uint8_t* line = next; line < next_end; line += 64) {
          _mm_prefetch(reinterpret_cast<const char*>(line), _MM_HINT_T0);
        }
        for (int64_t p = p0; p < p1; ++p) {
          kPanelTiles[rows - 1](a, scratch, p, r, b0, blocks, out, out_stride);
        }
      }
    }
  }
}

// Transposes a 16 x 16 matrix of dwords held one row per vector: row k of
// the result is column k of the input.
LLMPACK_AVX512VNNI inline void Transpose16x16(__m512i r[16]) {
  __m512i t[16], u[16];
  // Pairs of rows interleaved by dword, then by pairs of dwords: u[4 g + j]
  // holds, in its 128-bit lane L, column 4 L + j of rows 4 g .. 4 g + 3.
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    u[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
    u[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
    u[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
    u[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  // Gather lane L of the four groups g into column 4 L + j.
  for (int j = 0; j < 4; ++j) {
    const __m512i even01 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0x88);
    const __m512i odd01 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0xdd);
    const __m512i even23 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0x88);
    const __m512i odd23 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0xdd);
    r[j] = _mm512_shuffle_i32x4(even01, even23, 0x88);
    r[8 + j] = _mm512_shuffle_i32x4(even01, even23, 0xdd);
    r[4 + j] = _mm512_shuffle_i32x4(odd01, odd23, 0x88);
    r[12 + j] = _mm512_shuffle_i32x4(odd01, odd23, 0xdd);
  }
}

// One token's block of 32 activations as the 16 quads it contributes to a
// panel block (plane 0 quads 0..7, then plane 1's), one dword each; its
// scale goes to *scale.
LLMPACK_AVX512VNNI inline __m512i QuantizeBlock(const float* xb, float* scale) {
  const float max_code = static_cast<float>(kActivationCodeMax);
  const __m512 x0 = _mm512_loadu_ps(xb);
  const __m512 x1 = _mm512_loadu_ps(xb + 16);
  const float amax =
      _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1)));
  const float inv = amax > 0.0f ? max_code / amax : 0.0f;
  const __m512 vinv = _mm512_set1_ps(inv);
  // Round to nearest even (the default MXCSR mode), as nearbyint.
  const __m512i c0 = _mm512_cvtps_epi32(_mm512_mul_ps(x0, vinv));
  const __m512i c1 = _mm512_cvtps_epi32(_mm512_mul_ps(x1, vinv));
  const __m512i offset = _mm512_set1_epi32(128);
  const __m512i low_bits = _mm512_set1_epi32(127);
  const __m128i h0 =
      _mm512_cvtepi32_epi8(_mm512_add_epi32(_mm512_srai_epi32(c0, 7), offset));
  const __m128i h1 =
      _mm512_cvtepi32_epi8(_mm512_add_epi32(_mm512_srai_epi32(c1, 7), offset));
  const __m128i l0 = _mm512_cvtepi32_epi8(_mm512_and_si512(c0, low_bits));
  const __m128i l1 = _mm512_cvtepi32_epi8(_mm512_and_si512(c1, low_bits));
  __m512i all = _mm512_castsi128_si512(h0);
  all = _mm512_inserti32x4(all, h1, 1);
  all = _mm512_inserti32x4(all, l0, 2);
  *scale = amax / max_code;
  return _mm512_inserti32x4(all, l1, 3);
}

LLMPACK_AVX512VNNI void QuantizePanels(const float* x, int64_t panel_begin,
                                       int64_t panel_end,
                                       ActivationPanels* out) {
  const int64_t blocks = out->blocks, cols = out->cols;
  // A padding token's quads: zero codes, so plane 0 (high + 128) holds 128.
  const __m512i padding = _mm512_mask_set1_epi32(_mm512_setzero_si512(), 0x00ff,
                                                 int32_t(0x80808080));
  __m512i quads[kTokens];
  for (int64_t p = panel_begin; p < panel_end; ++p) {
    const int64_t real = std::min(kTokens, out->tokens - p * kTokens);
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t at = (p * blocks + b) * kTokens;
      for (int64_t i = 0; i < kTokens; ++i) {
        quads[i] =
            i < real ? QuantizeBlock(x + (p * kTokens + i) * cols + b * kBlock,
                                     &out->scales[at + i])
                     : padding;
      }
      // Token-major quads to the layout's quad-major vectors: one transpose
      // and 16 full-line stores instead of a scatter per token.
      Transpose16x16(quads);
      __m512i* block = reinterpret_cast<__m512i*>(
          out->codes.get() + (p * blocks + b) * ActivationPanels::kBlockBytes);
      for (int k = 0; k < 16; ++k) _mm512_store_si512(block + k, quads[k]);
    }
  }
}

}  // namespace

const PanelKernels* Avx512VnniPanelKernels() {
  static const PanelKernels kernels{&QuantizePanels, &PanelMatMul};
  return Avx512VnniQuantMatMul() != nullptr ? &kernels : nullptr;
}

}  // namespace llmpack::runtime

#else  // not x86-64 with GCC/Clang

namespace llmpack::runtime {

const PanelKernels* Avx512VnniPanelKernels() { return nullptr; }

}  // namespace llmpack::runtime

#endif
