// Throughput of the runtime's element-wise and attention kernels, scalar
// reference against the optimized set, called through the KernelTable as
// the forward pass calls them (matmuls are in matmul_bench.cc). Counters:
// bytes/s of the arrays read and written, FLOP/s with every add, multiply,
// divide and exp counted as one operation.
#include <algorithm>
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

// One layer's attention as Session::RunBlock computes it, 32 query heads
// sharing 8 kv heads of 64, keys transposed as the KV cache holds them.
constexpr int64_t kHeads = 32, kKvHeads = 8, kHeadDim = 64;
constexpr int64_t kGroup = kHeads / kKvHeads;
constexpr int64_t kKvDim = kKvHeads * kHeadDim;

// One decode token: `attention` per kv head over the whole cache. args:
// kernels, KV length.
void BM_Attention(benchmark::State& state) {
  const KernelTable& k = Kernels(state);
  const int64_t len = state.range(1);
  const int64_t key_stride = len + kKeyPadding;
  const std::vector<float> q = Random(kHeads * kHeadDim, 1);
  const std::vector<float> keys = Random(kKvDim * key_stride, 2);
  const std::vector<float> values = Random(len * kKvDim, 3);
  std::vector<float> scores(kGroup * len), out(kHeads * kHeadDim);
  const float scale = 1.0f / std::sqrt(static_cast<float>(kHeadDim));
  for (auto _ : state) {
    for (int64_t g = 0; g < kKvHeads; ++g) {
      k.attention(q.data() + g * kGroup * kHeadDim, kGroup,
                  keys.data() + g * kHeadDim * key_stride, key_stride,
                  values.data() + g * kHeadDim, kKvDim, len, kHeadDim, scale,
                  scores.data(), out.data() + g * kGroup * kHeadDim);
    }
    benchmark::DoNotOptimize(out.data());
  }
  // Keys and values are read once per kv head.
  const double bytes = 2.0 * kKvHeads * len * kHeadDim * sizeof(float);
  const double flops = kHeads * (4.0 * len * kHeadDim + 6.0 * len);
  SetRates(state, bytes, flops, k);
}
BENCHMARK(BM_Attention)->ArgsProduct({{0, 1}, {512, 4096}});

// A prompt of `tokens` tokens from position 0: `attention_rows` over every
// block of rows of every kv head, on one thread. args: kernels, tokens.
void BM_AttentionRows(benchmark::State& state) {
  const KernelTable& k = Kernels(state);
  const int64_t tokens = state.range(1);
  const int64_t key_stride = tokens + kKeyPadding;
  const int64_t q_stride = kHeads * kHeadDim;
  const std::vector<float> q = Random(tokens * q_stride, 1);
  const std::vector<float> keys = Random(kKvDim * key_stride, 2);
  const std::vector<float> values = Random(tokens * kKvDim, 3);
  std::vector<float> scratch(AttentionRowsScratch(kHeadDim, tokens));
  std::vector<float> out(tokens * q_stride);
  const float scale = 1.0f / std::sqrt(static_cast<float>(kHeadDim));
  const int64_t rows = tokens * kGroup;
  for (auto _ : state) {
    for (int64_t g = 0; g < kKvHeads; ++g) {
      for (int64_t r = 0; r < rows; r += kAttentionRowBlock) {
        k.attention_rows(q.data() + g * kGroup * kHeadDim, q_stride, kGroup, 0,
                         r, std::min(rows, r + kAttentionRowBlock),
                         keys.data() + g * kHeadDim * key_stride, key_stride,
                         values.data() + g * kHeadDim, kKvDim, kHeadDim, scale,
                         scratch.data(), out.data() + g * kGroup * kHeadDim);
      }
    }
    benchmark::DoNotOptimize(out.data());
  }
  // Causal: token t attends to t + 1 keys.
  const double pairs = kHeads * tokens * (tokens + 1) / 2.0;
  const double bytes = 2.0 * kKvHeads * tokens * kHeadDim * sizeof(float);
  SetRates(state, bytes, pairs * (4.0 * kHeadDim + 6.0), k);
}
BENCHMARK(BM_AttentionRows)->ArgsProduct({{0, 1}, {512}});

}  // namespace
}  // namespace llmpack::runtime

BENCHMARK_MAIN();
