// Matmul throughput of both kernel sets (scalar reference and optimized,
// through the KernelTable) for f32, f16, bf16, q8 and q4 weights at the
// shapes of a 1B-class model, as decode (one token, matrix-vector) and
// prefill (64 tokens, matrix-matrix), with the runtime's thread pool
// splitting rows as Session::Linear does. Counters: bytes/s of weights read,
// FLOP/s (2 per multiply-add). "dram" (8192x2048) rotates through copies
// totalling >= 512 MiB so every call reads weights from memory, as decode
// does; "cache" (2048x2048) reuses one matrix. BM_ReadBandwidth and
// BM_ComputePeaks are the runtime's probes to compare them with, measured
// in the same process with the same threads.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <random>
#include <vector>

#include "benchmark/benchmark.h"
#include "runtime/aligned_bytes.h"
#include "runtime/kernels.h"
#include "runtime/probes.h"
#include "runtime/test_package.h"
#include "runtime/thread_pool.h"

namespace llmpack::runtime {
namespace {

constexpr int64_t kDramBytes = int64_t{512} << 20;

ThreadPool& Pool(int threads) {
  static ThreadPool* pools[8] = {};
  if (pools[threads] == nullptr) pools[threads] = new ThreadPool(threads);
  return *pools[threads];
}

// The runtime's memory read bandwidth probe (runtime/probes.h, the one
// llmverify --bench reports against), with the benchmark's threads.
void BM_ReadBandwidth(benchmark::State& state) {
  ThreadPool& pool = Pool(static_cast<int>(state.range(0)));
  double rate = 0;
  for (auto _ : state) {
    absl::StatusOr<double> bw =
        MeasureReadBandwidth(pool, kBandwidthProbeBytes, 0.3);
    if (!bw.ok()) {
      state.SkipWithError(std::string(bw.status().message()).c_str());
      return;
    }
    rate = *bw;
  }
  state.counters["bytes/s"] = rate;
}
BENCHMARK(BM_ReadBandwidth)->Arg(1)->Arg(2)->Iterations(3)->UseRealTime();

// The compute peaks the prefill figures compare with (runtime/probes.h).
void BM_ComputePeaks(benchmark::State& state) {
  ThreadPool& pool = Pool(static_cast<int>(state.range(0)));
  ComputePeaks p;
  for (auto _ : state) p = MeasureComputePeaks(pool, 0.6);
  state.counters["f32_FMA_FLOP/s"] = p.f32_fma_flops;
  state.counters["bf16_dot_FLOP/s"] = p.bf16_dot_flops;
  state.counters["int8_dot_OP/s"] = p.int8_dot_ops;
  state.SetLabel(p.f32_isa + " " + p.bf16_isa + " " + p.int8_isa);
}
BENCHMARK(BM_ComputePeaks)->Arg(1)->Arg(2)->Iterations(1)->UseRealTime();

// Weights in `dtype` (q4/q8: group 32, f16 scales, zero points).
struct Weights {
  // `copies` matrices back to back, in 2 MiB pages as the runtime keeps
  // weights: in 4 KiB ones a guest under shadow paging re-faults every page
  // of the 512 MiB rotation, and "dram" ran at 0.4 GB/s (docs/runtime.md,
  // "Huge page cache folios").
  AlignedBytes bytes{nullptr, &std::free};
  int64_t matrix_bytes = 0;
  int copies = 1;
  WeightMatrix w;
};

Weights MakeWeights(DType dtype, int64_t rows, int64_t cols, bool dram) {
  std::mt19937 rng(1);
  std::normal_distribution<float> d(0.0f, 0.02f);
  std::vector<float> values(static_cast<size_t>(rows * cols));
  for (float& v : values) v = d(rng);
  Weights out;
  out.w.dtype = dtype;
  out.w.rows = rows;
  out.w.cols = cols;
  std::vector<uint8_t> one;
  if (dtype == DType::kQ4 || dtype == DType::kQ8) {
    out.w.layout = *quant::MakeRowLayout({dtype, 32, DType::kF16, true}, cols);
    one.resize(static_cast<size_t>(rows * out.w.layout.row_bytes));
    for (int64_t r = 0; r < rows; ++r) {
      testing::QuantizeRowNearest(out.w.layout, values.data() + r * cols,
                                  one.data() + r * out.w.layout.row_bytes);
    }
  } else {
    one.resize(values.size() * DTypeSize(dtype));
    (void)ConvertElements(DType::kF32, values.data(), dtype, one.data(),
                          values.size());
  }
  out.matrix_bytes = static_cast<int64_t>(one.size());
  out.copies = dram ? static_cast<int>(kDramBytes / out.matrix_bytes + 1) : 1;
  const size_t total = one.size() * static_cast<size_t>(out.copies);
  out.bytes = AllocateHugePages(total);
  if (out.bytes == nullptr) throw std::bad_alloc();
  for (int i = 0; i < out.copies; ++i) {
    std::memcpy(out.bytes.get() + i * one.size(), one.data(), one.size());
  }
  return out;
}

// args: dtype code, rows, cols, tokens, threads, dram (0/1), kernels (0
// scalar, 1 optimized).
void BM_MatMul(benchmark::State& state) {
  const DType dtype = static_cast<DType>(state.range(0));
  const int64_t rows = state.range(1), cols = state.range(2);
  const int64_t tokens = state.range(3);
  const int threads = static_cast<int>(state.range(4));
  const bool dram = state.range(5) != 0;
  const KernelTable& k =
      state.range(6) == 0 ? ScalarKernels() : OptimizedKernels();
  Weights weights = MakeWeights(dtype, rows, cols, dram);
  std::mt19937 rng(2);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(tokens * cols));
  for (float& v : x) v = d(rng);
  std::vector<float> out(static_cast<size_t>(tokens * rows));
  ThreadPool& pool = Pool(threads);
  MatMulInput in;
  int copy = 0;
  for (auto _ : state) {
    WeightMatrix w = weights.w;
    w.data = weights.bytes.get() + copy * weights.matrix_bytes;
    copy = (copy + 1) % weights.copies;
    // As Session::Linear: prepare once, then rows in chunks of whole tiles.
    k.prepare_matmul(x.data(), tokens, w, &in, &pool);
    int64_t grain = (rows + threads * 4 - 1) / (threads * 4);
    grain = std::max<int64_t>(4, (grain + 3) / 4 * 4);
    pool.ParallelFor(rows, grain, [&](int64_t begin, int64_t end) {
      k.matmul(in, w, begin, end, out.data(), rows);
    });
    benchmark::DoNotOptimize(out.data());
  }
  const double iters = static_cast<double>(state.iterations());
  state.counters["bytes/s"] = benchmark::Counter(iters * weights.matrix_bytes,
                                                 benchmark::Counter::kIsRate);
  state.counters["FLOP/s"] = benchmark::Counter(
      iters * 2.0 * rows * cols * tokens, benchmark::Counter::kIsRate);
  state.SetLabel(std::string(DTypeName(dtype)) + (dram ? " dram " : " cache ") +
                 k.name);
}

void DecodeAndPrefillShapes(benchmark::internal::Benchmark* b) {
  for (int dtype : {int(DType::kQ4), int(DType::kQ8), int(DType::kBF16),
                    int(DType::kF16), int(DType::kF32)}) {
    for (int kernels : {1, 0}) {
      // The scalar reference runs on one thread only: it is the yardstick.
      for (int threads :
           kernels == 1 ? std::vector<int>{1, 2} : std::vector<int>{1}) {
        for (int tokens : {1, 64, 512}) {
          b->Args({dtype, 2048, 2048, tokens, threads, 0, kernels});
          b->Args({dtype, 8192, 2048, tokens, threads, 1, kernels});
        }
        // The MLP down projection: rows four times longer than the prompt
        // token chunks were sized for.
        if (kernels == 1) b->Args({dtype, 2048, 8192, 512, threads, 1, 1});
      }
    }
  }
}
BENCHMARK(BM_MatMul)->Apply(DecodeAndPrefillShapes)->UseRealTime();

}  // namespace
}  // namespace llmpack::runtime

BENCHMARK_MAIN();
