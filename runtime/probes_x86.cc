// The compute probe's loops for AVX-512 VNNI and AVX-512 BF16 (see
// probe_loops.h). Each function carries its own target attribute and is
// only returned, and so only run, on a CPU that reports the extension; other
// architectures compile the nullptr stubs at the end.
#include "runtime/probe_loops.h"

#if defined(__x86_64__) && defined(__GNUC__)

#include <immintrin.h>

// See kernels_avx512vnni.cc: GCC 12's AVX-512 intrinsics trip
// -Wuninitialized once inlined into target-attributed functions.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace llmpack::runtime {
namespace {

// Enough independent accumulators to cover the dot instructions' latency
// (4-5 cycles at up to two per cycle).
constexpr int kChains = 12;  // the named c0..c11 below

__attribute__((target("avx512f,avx512bw,avx512vnni"))) double VnniLoop(
    int64_t iters, double* sink) {
  // Codes of 1 keep the int32 sums far from overflow: each lane grows by 4
  // per instruction.
  const __m512i a = _mm512_set1_epi8(1);
  const __m512i b = _mm512_set1_epi8(1);
  // Named accumulators: an array kept one chain in memory (measured at a
  // fifth of the instruction's throughput).
  __m512i c0 = _mm512_setzero_si512(), c1 = c0, c2 = c0, c3 = c0, c4 = c0,
          c5 = c0, c6 = c0, c7 = c0, c8 = c0, c9 = c0, c10 = c0, c11 = c0;
  for (int64_t i = 0; i < iters; ++i) {
    c0 = _mm512_dpbusd_epi32(c0, a, b);
    c1 = _mm512_dpbusd_epi32(c1, a, b);
    c2 = _mm512_dpbusd_epi32(c2, a, b);
    c3 = _mm512_dpbusd_epi32(c3, a, b);
    c4 = _mm512_dpbusd_epi32(c4, a, b);
    c5 = _mm512_dpbusd_epi32(c5, a, b);
    c6 = _mm512_dpbusd_epi32(c6, a, b);
    c7 = _mm512_dpbusd_epi32(c7, a, b);
    c8 = _mm512_dpbusd_epi32(c8, a, b);
    c9 = _mm512_dpbusd_epi32(c9, a, b);
    c10 = _mm512_dpbusd_epi32(c10, a, b);
    c11 = _mm512_dpbusd_epi32(c11, a, b);
    // Keeps the compiler from folding the loop into one multiplication.
    __asm__ volatile("" : "+v"(c0));
  }
  const __m512i total = _mm512_add_epi32(
      _mm512_add_epi32(
          _mm512_add_epi32(_mm512_add_epi32(c0, c1), _mm512_add_epi32(c2, c3)),
          _mm512_add_epi32(_mm512_add_epi32(c4, c5), _mm512_add_epi32(c6, c7))),
      _mm512_add_epi32(_mm512_add_epi32(c8, c9), _mm512_add_epi32(c10, c11)));
  *sink += static_cast<double>(_mm512_reduce_add_epi32(total));
  return static_cast<double>(iters) * kChains * 64 * 2;
}

__attribute__((target("avx512f,avx512bf16"))) double Bf16Loop(int64_t iters,
                                                              double* sink) {
  const __m512bh a =
      _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(1e-3f));
  const __m512bh b =
      _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.5f), _mm512_set1_ps(0.5f));
  __m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0,
         c5 = c0, c6 = c0, c7 = c0, c8 = c0, c9 = c0, c10 = c0, c11 = c0;
  for (int64_t i = 0; i < iters; ++i) {
    c0 = _mm512_dpbf16_ps(c0, a, b);
    c1 = _mm512_dpbf16_ps(c1, a, b);
    c2 = _mm512_dpbf16_ps(c2, a, b);
    c3 = _mm512_dpbf16_ps(c3, a, b);
    c4 = _mm512_dpbf16_ps(c4, a, b);
    c5 = _mm512_dpbf16_ps(c5, a, b);
    c6 = _mm512_dpbf16_ps(c6, a, b);
    c7 = _mm512_dpbf16_ps(c7, a, b);
    c8 = _mm512_dpbf16_ps(c8, a, b);
    c9 = _mm512_dpbf16_ps(c9, a, b);
    c10 = _mm512_dpbf16_ps(c10, a, b);
    c11 = _mm512_dpbf16_ps(c11, a, b);
    __asm__ volatile("" : "+v"(c0));
  }
  const __m512 total = _mm512_add_ps(
      _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(c0, c1), _mm512_add_ps(c2, c3)),
                    _mm512_add_ps(_mm512_add_ps(c4, c5), _mm512_add_ps(c6, c7))),
      _mm512_add_ps(_mm512_add_ps(c8, c9), _mm512_add_ps(c10, c11)));
  *sink += static_cast<double>(_mm512_reduce_add_ps(total));
  return static_cast<double>(iters) * kChains * 32 * 2;
}

bool Supports(bool bf16) {
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx512f")) return false;
  return bf16 ? __builtin_cpu_supports("avx512bf16")
              : __builtin_cpu_supports("avx512bw") &&
                    __builtin_cpu_supports("avx512vnni");
}

}  // namespace

ProbeLoopFn Avx512VnniProbeLoop() {
  static const bool supported = Supports(false);
  return supported ? &VnniLoop : nullptr;
}

ProbeLoopFn Avx512Bf16ProbeLoop() {
  static const bool supported = Supports(true);
  return supported ? &Bf16Loop : nullptr;
}

}  // namespace llmpack::runtime

#else  // not x86-64 with GCC/Clang

namespace llmpack::runtime {

ProbeLoopFn Avx512VnniProbeLoop() { return nullptr; }
ProbeLoopFn Avx512Bf16ProbeLoop() { return nullptr; }

}  // namespace llmpack::runtime

#endif
