// The target attribute of the AVX-512 VNNI kernels (kernels_avx512vnni.cc,
// kernels_avx512vnni_panels.cc). Highway 1.0.3 has no VNNI op, so those
// functions carry this attribute and are only reached through the dispatch
// in kernels_hwy.cc once the CPU is known to have the extensions. Include it
// from x86-64 GCC/Clang code only, after the system headers.
#ifndef LLMPACK_RUNTIME_AVX512VNNI_TARGET_H_
#define LLMPACK_RUNTIME_AVX512VNNI_TARGET_H_

// GCC 12's AVX-512 intrinsics build their "undefined" pass-through operands
// as self-initialized variables, which -Wuninitialized reports once they are
// inlined into functions with a target attribute: a false positive. (Clang,
// used for the fuzz and sanitizer builds, has no -Wmaybe-uninitialized.)
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#define LLMPACK_AVX512VNNI \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,f16c,fma")))

#endif  // LLMPACK_RUNTIME_AVX512VNNI_TARGET_H_
