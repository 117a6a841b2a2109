// The runtime's numeric kernels behind one dispatch point. Every kernel has a
// scalar reference (plain loops, the definition of correct) and an optimized
// path (Highway SIMD, best instruction set chosen at run time). The forward
// pass only ever calls kernels through a KernelTable, so a test or a user
// (`llmverify --kernels scalar`) can swap the whole set at once.
//
// Thread safety: every kernel is a pure function of its arguments (the
// optimized matmul keeps a thread_local scratch buffer); any number of threads
// may call kernels concurrently on disjoint outputs.
#ifndef LLMPACK_RUNTIME_KERNELS_H_
#define LLMPACK_RUNTIME_KERNELS_H_

#include <cstdint>
#include <string>

#include "llmpack/dtype.h"

namespace llmpack::runtime {

// A row-major weight matrix [rows, cols] in its stored float type. Not owned.
struct WeightMatrix {
  DType dtype = DType::kF32;
  const void* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
};

struct KernelTable {
  const char* name;  // "scalar" or "highway:<target>"

  // out[t * out_stride + r] = sum_c x[t * w.cols + c] * w[r, c] for
  // t in [0, tokens) and r in [row_begin, row_end): y = x W^T restricted to a
  // range of output rows so threads can split the rows.
  void (*matmul)(const float* x, int64_t tokens, const WeightMatrix& w,
                 int64_t row_begin, int64_t row_end, float* out,
                 int64_t out_stride);
  // out = x / sqrt(mean(x^2) + eps) * weight (out may alias x).
  void (*rms_norm)(const float* x, const float* weight, int64_t n, float eps,
                   float* out);
  // Rotate-half RoPE on one head in place: for i < half = head_dim / 2,
  // (v[i], v[i+half]) <- (v[i] c[i] - v[i+half] s[i], v[i+half] c[i] + v[i]
  // s[i]).
  void (*rope)(float* v, const float* cos, const float* sin, int64_t head_dim);
  // x <- softmax(x), computed stably (max subtracted first).
  void (*softmax)(float* x, int64_t n);
  // gate <- silu(gate) * up, silu(g) = g / (1 + exp(-g)).
  void (*silu_mul)(float* gate, const float* up, int64_t n);
  float (*dot)(const float* a, const float* b, int64_t n);
  // y += a * x.
  void (*axpy)(float a, const float* x, float* y, int64_t n);
};

enum class KernelChoice { kScalar, kOptimized };

const KernelTable& ScalarKernels();
// Highway kernels for the best target this CPU supports.
const KernelTable& OptimizedKernels();
const KernelTable& GetKernels(KernelChoice choice);

// "scalar" / "optimized" (also "auto" = optimized).
bool ParseKernelChoice(const std::string& text, KernelChoice* choice);

}  // namespace llmpack::runtime

#endif  // LLMPACK_RUNTIME_KERNELS_H_
