// Highway kernels that live in their own files (each compiled once per SIMD
// target), reached by the forward pass only through the KernelTable built in
// kernels_hwy.cc, the one dispatch point. Declared here for that table, the
// tests and the benchmarks.
//
// Thread safety: pure functions; concurrent calls on disjoint outputs are
// safe.
#ifndef LLMPACK_RUNTIME_KERNELS_HWY_H_
#define LLMPACK_RUNTIME_KERNELS_HWY_H_

#include <cstdint>

#include "runtime/kernels.h"

namespace llmpack::runtime {

// out[t * out_stride + r] = x[t, :] . w[r, :] for f32/f16/bf16 weights, rows
// [row_begin, row_end), t < tokens (kernels_float_hwy.cc), on the best
// target this CPU supports.
void FloatMatMulHighway(const float* x, int64_t tokens, const WeightMatrix& w,
                        int64_t row_begin, int64_t row_end, float* out,
                        int64_t out_stride);

// KernelTable::attention_rows (kernels_attention_hwy.cc) on the best target
// this CPU supports.
void AttentionRowsHighway(const float* q, int64_t q_stride, int64_t group,
                          int64_t pos0, int64_t row_begin, int64_t row_end,
                          const float* k, int64_t k_stride, const float* v,
                          int64_t v_stride, int64_t head_dim, float scale,
                          float* scratch, float* out);

}  // namespace llmpack::runtime

#endif  // LLMPACK_RUNTIME_KERNELS_HWY_H_
