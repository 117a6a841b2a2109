// Throughput of the runtime's element-wise and attention kernels, scalar
// reference against the optimized set, called through the KernelTable as
// the forward pass calls them (matmuls are in matmul_bench.cc). Counters:
// bytes/s of the arrays read and written, FLOP/s with every add, multiply,
// divide and exp counted as one operation.
#include <cmath>
#include <random>
#include <vector>

#include "benchmark/benchmark.h"
#include "runtime/kernels.h"

namespace llmpack::runtime {
namespace {

const KernelTable& Kernels(const benchmark::State& state) {
  return state.range(0) == 0 ? ScalarKernels() : OptimizedKernels();
}

std::vector<float> Random(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1, 1);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

void SetRates(benchmark::State& state, double bytes, double flops,
              const KernelTable& k) {
  const double iters = static_cast<double>(state.iterations());
  state.counters["bytes/s"] =
      benchmark::Counter(iters * bytes, benchmark::Counter::kIsRate);
  state.counters["FLOP/s"] =
      benchmark::Counter(iters * flops, benchmark::Counter::kIsRate);
  state.SetLabel(k.name);
}

// args: kernels (0 scalar, 1 optimized), hidden size.
void BM_RmsNorm(benchmark::State& state) {
  const KernelTable& k = Kernels(state);
  const int64_t n = state.range(1);
  const std::vector<float> x = Random(n, 1), w = Random(n, 2);
  std::vector<float> out(n);
  for (auto _ : state) {
    k.rms_norm(x.data(), w.data(), n, 1e-5f, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  // Square-and-add per element, then scale and weight.
  SetRates(state, 3.0 * n * sizeof(float), 4.0 * n, k);
}
BENCHMARK(BM_RmsNorm)->ArgsProduct({{0, 1}, {2048, 4096}});

// RoPE on every head of a token's q (32 heads of 64 and 128).
// args: kernels, head_dim.
void BM_Rope(benchmark::State& state) {
  const KernelTable& k = Kernels(state);
  const int64_t head_dim = state.range(1), heads = 32, half = head_dim / 2;
  std::vector<float> q = Random(heads * head_dim, 1);
  std::vector<float> cos(half), sin(half);
  for (int64_t i = 0; i < half; ++i) {
    cos[i] = std::cos(0.1f * i);
    sin[i] = std::sin(0.1f * i);
  }
  for (auto _ : state) {
    for (int64_t h = 0; h < heads; ++h) {
      k.rope(q.data() + h * head_dim, cos.data(), sin.data(), head_dim);
    }
    benchmark::DoNotOptimize(q.data());
  }
  // Four multiplies and two adds per rotated pair.
  SetRates(state, (2.0 * heads * head_dim + 2.0 * half) * sizeof(float),
           6.0 * heads * half, k);
}
BENCHMARK(BM_Rope)->ArgsProduct({{0, 1}, {64, 128}});

// args: kernels, length.
void BM_Softmax(benchmark::State& state) {
  const KernelTable& k = Kernels(state);
  const int64_t n = state.range(1);
  const std::vector<float> source = Random(n, 1);
  std::vector<float> x(n);
  for (auto _ : state) {
    std::copy(source.begin(), source.end(), x.begin());
    k.softmax(x.data(), n);
    benchmark::DoNotOptimize(x.data());
  }
  // Max, subtract, exp, sum, divide.
  SetRates(state, 2.0 * n * sizeof(float), 5.0 * n, k);
}
BENCHMARK(BM_Softmax)->ArgsProduct({{0, 1}, {512, 4096, 32768}});

// args: kernels, ffn size.
void BM_SiluMul(benchmark::State& state) {
  const KernelTable& k = Kernels(state);
  const int64_t n = state.range(1);
  const std::vector<float> source = Random(n, 1), up = Random(n, 2);
  std::vector<float> gate(n);
  for (auto _ : state) {
    std::copy(source.begin(), source.end(), gate.begin());
    k.silu_mul(gate.data(), up.data(), n);
    benchmark::DoNotOptimize(gate.data());
  }
  // Negate, exp, add, divide, multiply.
  SetRates(state, 3.0 * n * sizeof(float), 5.0 * n, k);
}
BENCHMARK(BM_SiluMul)->ArgsProduct({{0, 1}, {8192}});

// One decode token's attention for one layer as Session::RunBlock computes
// it: per query head, scores = q . k_t over the KV length, softmax, then
// out = sum_t p_t v_t (dot + softmax + axpy), 32 query heads sharing 8 KV
// heads of 64. args: kernels, KV length.
void BM_Attention(benchmark::State& state) {
  const KernelTable& k = Kernels(state);
  const int64_t len = state.range(1);
  constexpr int64_t kHeads = 32, kKvHeads = 8, kHeadDim = 64;
  constexpr int64_t kKvDim = kKvHeads * kHeadDim;
  const std::vector<float> q = Random(kHeads * kHeadDim, 1);
  const std::vector<float> kc = Random(len * kKvDim, 2);
  const std::vector<float> vc = Random(len * kKvDim, 3);
  std::vector<float> scores(len), out(kHeads * kHeadDim);
  const float scale = 1.0f / std::sqrt(static_cast<float>(kHeadDim));
  for (auto _ : state) {
    for (int64_t h = 0; h < kHeads; ++h) {
      const int64_t kv = h / (kHeads / kKvHeads) * kHeadDim;
      const float* qh = q.data() + h * kHeadDim;
      for (int64_t t = 0; t < len; ++t) {
        scores[t] = scale * k.dot(qh, kc.data() + t * kKvDim + kv, kHeadDim);
      }
      k.softmax(scores.data(), len);
      float* oh = out.data() + h * kHeadDim;
      std::fill(oh, oh + kHeadDim, 0.0f);
      for (int64_t t = 0; t < len; ++t) {
        k.axpy(scores[t], vc.data() + t * kKvDim + kv, oh, kHeadDim);
      }
    }
    benchmark::DoNotOptimize(out.data());
  }
  // Every head reads its KV head's keys and values (the cache is shared by
  // 4 heads, so from cache after the first).
  const double bytes = 2.0 * kHeads * len * kHeadDim * sizeof(float);
  const double flops = kHeads * (4.0 * len * kHeadDim + 6.0 * len);
  SetRates(state, bytes, flops, k);
}
BENCHMARK(BM_Attention)->ArgsProduct({{0, 1}, {512, 4096}});

}  // namespace
}  // namespace llmpack::runtime

BENCHMARK_MAIN();
