// The register-only loops behind MeasureComputePeaks (runtime/probes.h):
// Highway ones in probes.cc and, for the x86 dot-product extensions Highway
// 1.0.3 has no op for, intrinsics with their own target attribute in
// probes_x86.cc. Internal to the runtime.
// Thread safety: the loops are pure; any number of threads may run them.
#ifndef LLMPACK_RUNTIME_PROBE_LOOPS_H_
#define LLMPACK_RUNTIME_PROBE_LOOPS_H_

#include <cstdint>

namespace llmpack::runtime {

// Runs `iters` iterations of independent multiply-add chains and returns the
// operations done (a multiply-add counts 2); `sink` receives a value derived
// from the accumulators so the work cannot be optimized away.
using ProbeLoopFn = double (*)(int64_t iters, double* sink);

// vpdpbusd (64 u8 x s8 products into 16 int32 lanes); nullptr on a CPU
// without AVX-512 VNNI or off x86-64.
ProbeLoopFn Avx512VnniProbeLoop();
// vdpbf16ps (32 bf16 pairs into 16 f32 lanes); nullptr on a CPU without
// AVX-512 BF16 or off x86-64.
ProbeLoopFn Avx512Bf16ProbeLoop();

}  // namespace llmpack::runtime

#endif  // LLMPACK_RUNTIME_PROBE_LOOPS_H_
