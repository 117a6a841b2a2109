// The quantized-activation scheme behind the optimized quantized matmul,
// defined once in scalar code, plus the individual SIMD implementations (for
// tests and benchmarks; the forward pass reaches them only through
// KernelTable).
//
// Definition. Activations: each token's row is cut into blocks of
// kActivationBlock (32) elements; block b's scale is sa[b] = amax / M with
// amax = max |x| over the block and M = kActivationCodeMax (16383), and its
// codes are a[c] = nearbyint(x[c] * (M / amax)) (ties to even) (0 when amax is
// 0, and past the row's end), stored as planes high = floor(a / 128), low = a -
// 128 * high. Dot of a token with a weight row: for every block b and weight
// group g that overlap,
//   d(b, g) = sum over c in b and g of (q[c] - zero[g]) * a[c]   (exact int)
//   dot     = sum of float(d(b, g)) * (scale[g] * sa[b])        (f32)
// QuantizedDotReference computes exactly this; the SIMD kernels compute the
// same integers and differ only in the order of the f32 sums (and fold the
// zero-point term zero[g] * sum(a) per row), within the tolerances in
// tests/runtime/quant_kernels_test.cc. Compared with f32 activations and
// quant::DequantizeRow weights (the scalar kernel set), each element's
// activation error is at most sa[b] / 2.
//
// Thread safety: pure functions; concurrent calls on disjoint outputs are
// safe.
#ifndef LLMPACK_RUNTIME_QUANT_MATMUL_H_
#define LLMPACK_RUNTIME_QUANT_MATMUL_H_

#include <cstdint>

#include "quant/codec.h"
#include "runtime/kernels.h"

namespace llmpack::runtime {

// Index in a token's code planes of element c. Natural order (q8 weights) is c.
// q4 order matches q4 bytes, whose low nibbles hold the even elements: the
// blocks are taken four at a time ("superblock", the last may hold fewer,
// m blocks); a superblock stores the 16 even elements of each of its blocks,
// then the 16 odd elements of each, so one load of 16 * m nibble bytes lines
// up with 16 * m codes.
int64_t ActivationCodeIndex(bool q4_order, int64_t blocks, int64_t c);

// Quantizes x [tokens, cols] for weights like `w` (the codes' order depends
// on its dtype). `out` keeps its buffers between calls. The scalar
// definition; QuantizeActivationsHighway computes the same bytes.
void QuantizeActivations(const float* x, int64_t tokens, int64_t cols,
                         const WeightMatrix& w, QuantizedActivations* out);
void QuantizeActivationsHighway(const float* x, int64_t tokens, int64_t cols,
                                const WeightMatrix& w,
                                QuantizedActivations* out);

// The parts QuantizeActivations is made of, shared with the SIMD version:
// sizing `out` (scales zeroed), where block b's even and odd elements go
// (codes index even + j * step holds element 2j of the block, odd + j * step
// element 2j + 1), and the scalar quantization of block b of token t.
void StartQuantizedActivations(int64_t tokens, int64_t cols,
                               const WeightMatrix& w,
                               QuantizedActivations* out);
struct BlockPlacement {
  int64_t even, odd, step;
};
BlockPlacement PlaceBlock(const QuantizedActivations& a, int64_t b);
void QuantizeActivationBlock(const float* x, int64_t t, int64_t b,
                             QuantizedActivations* out);

// The definition above for token `token` and one weight row, summed over
// activation blocks [block_begin, block_end).
float QuantizedDotReference(const QuantizedActivations& a, int64_t token,
                            const quant::RowLayout& layout, const uint8_t* row,
                            int64_t block_begin, int64_t block_end);

// The reference over every token and rows [row_begin, row_end).
void QuantizedMatMulReference(const QuantizedActivations& a,
                              const WeightMatrix& w, int64_t row_begin,
                              int64_t row_end, float* out, int64_t out_stride);

// Decode tiles prefetch the next tile's rows (the `bytes` after `next`,
// clipped at `end`, the end of the caller's rows; none when `end` is null)
// spread over their own `steps`: the 64-byte lines to fetch per step.
inline int64_t DecodePrefetchLines(const uint8_t* next, const uint8_t* end,
                                   int64_t bytes, int64_t steps) {
  if (end == nullptr || next >= end) return 0;
  const int64_t fetch = bytes < end - next ? bytes : end - next;
  return (fetch / 64 + steps) / (steps > 1 ? steps : 1);
}

// The SIMD implementations: weights whose group size is a multiple of
// kActivationBlock only (the dispatch sends others to the reference).
using QuantMatMulFn = void (*)(const QuantizedActivations& a,
                               const WeightMatrix& w, int64_t row_begin,
                               int64_t row_end, float* out, int64_t out_stride);

// Highway implementation for the best enabled target (hwy's
// SetSupportedTargetsForTest selects others).
void QuantMatMulHighway(const QuantizedActivations& a, const WeightMatrix& w,
                        int64_t row_begin, int64_t row_end, float* out,
                        int64_t out_stride);

// The AVX-512 VNNI implementation, or nullptr when this build or CPU lacks
// it (non-x86, or no avx512f/bw/vl/vnni).
QuantMatMulFn Avx512VnniQuantMatMul();

// Token panels: prompts (several tokens) times q4 weights on AVX-512 VNNI.
// The codes are QuantizeActivations' (same blocks, scales and rounding), in
// panels of ActivationPanels::kTokens = 16 tokens; the last panel is padded
// with zero tokens (codes 0, scales 0). For panel p and block b, 1024 bytes:
// plane 0 (high + 128, so it is unsigned) then plane 1 (low), each 8 quads
// of 64 bytes; quad k holds, for token i of the panel, the codes of elements
// 32b + 4k .. 32b + 4k + 3 at bytes 4i .. 4i + 3. Scales are
// [panel][block][16]. A vpdpbusd of one quad with four
// weight codes broadcast to every lane thus adds four products for 16 tokens at
// once, and a block's 8 quads give each token's exact integer dot with one
// block of a weight row: the weights are read once per panel, not once per
// token, and the per-block scaling is one multiply-add for 16 tokens. The
// matmul computes QuantizedDotReference's integers d(b, g), zero point included
// (the weight codes are unpacked minus their zero point, as signed bytes,
// so nothing cancels in f32),
// and its products float(d) * (scale * sa); only the order of the f32 sum
// differs.
//
// Whether the panel matmul takes x [tokens, w.cols] times w: q4 weights,
// whole blocks (cols and group size multiples of kActivationBlock) and at
// least kPanelMinTokens tokens (fewer would mostly multiply padding).
inline constexpr int64_t kPanelMinTokens = 8;
bool PanelMatMulApplies(const WeightMatrix& w, int64_t tokens);

// Sizes `out` for x [tokens, cols] (cols a multiple of kActivationBlock) and
// zeroes the padding; the scalar definition of the layout fills the rest.
void StartActivationPanels(int64_t tokens, int64_t cols, ActivationPanels* out);
void QuantizeActivationPanels(const float* x, int64_t tokens, int64_t cols,
                              ActivationPanels* out);

// Fills panels [panel_begin, panel_end) of `out`, which
// StartActivationPanels sized for x [out->tokens, out->cols]: the same bytes
// as QuantizeActivationPanels there. Panels are independent, so threads may
// fill disjoint ranges at once.
using PanelQuantizeFn = void (*)(const float* x, int64_t panel_begin,
                                 int64_t panel_end, ActivationPanels* out);
using PanelMatMulFn = void (*)(const ActivationPanels& a, const WeightMatrix& w,
                               int64_t row_begin, int64_t row_end, float* out,
                               int64_t out_stride);
struct PanelKernels {
  PanelQuantizeFn quantize;
  PanelMatMulFn matmul;
};
// The AVX-512 VNNI panel kernels, or nullptr when this build or CPU lacks
// them.
const PanelKernels* Avx512VnniPanelKernels();

// The codes of one block of kActivationBlock elements (n of them real, the
// rest 0) as QuantizeActivations defines them: returns the block's scale and
// sets the sum of its codes.
float QuantizeBlockCodes(const float* x, int64_t n,
                         int32_t codes[kActivationBlock], int32_t* sum);

}  // namespace llmpack::runtime

#endif  // LLMPACK_RUNTIME_QUANT_MATMUL_H_
