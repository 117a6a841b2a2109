// Matmul throughput for bf16, q8 and q4 weights at the shapes of a 1B-class
// model, as decode (one token, matrix-vector) and prefill (many tokens),
// with the runtime's thread pool splitting rows as Session::Linear does.
// Counters: bytes/s of weights read, FLOP/s (2 per multiply-add). "dram"
// rotates through copies totalling >= 512 MiB so every call reads weights
// from memory, as decode does; "cache" reuses one matrix. BM_ReadBandwidth
// is the memory read probe to compare the decode figures with, measured in
// the same process with the same threads.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "benchmark/benchmark.h"
#include "runtime/kernels.h"
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

// Sums 64-byte lines of a buffer much larger than any cache, split over
// the pool's threads: the memory read bandwidth probe.
void BM_ReadBandwidth(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  const size_t n = static_cast<size_t>(kDramBytes) / sizeof(uint64_t);
  std::vector<uint64_t> buffer(n, 1);
  ThreadPool& pool = Pool(threads);
  const int64_t grain = int64_t{1} << 18;
  uint64_t sink = 0;
  for (auto _ : state) {
    // One slot per chunk, so threads never write the same one.
    std::vector<uint64_t> partial(n / grain + 1, 0);
    pool.ParallelFor(static_cast<int64_t>(n), grain,
                     [&](int64_t begin, int64_t end) {
                       uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
                       for (int64_t i = begin; i < end; i += 8) {
                         s0 += buffer[i] ^ buffer[i + 1];
                         s1 += buffer[i + 2] ^ buffer[i + 3];
                         s2 += buffer[i + 4] ^ buffer[i + 5];
                         s3 += buffer[i + 6] ^ buffer[i + 7];
                       }
                       partial[begin / grain] = s0 + s1 + s2 + s3;
                     });
    for (uint64_t p : partial) sink += p;
  }
  benchmark::DoNotOptimize(sink);
  state.counters["bytes/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * kDramBytes,
                         benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ReadBandwidth)->Arg(1)->Arg(2)->UseRealTime()->MinTime(1.0);

// Weights in `dtype` (q4/q8: group 32, f16 scales, zero points).
struct Weights {
  std::vector<uint8_t> bytes;  // `copies` matrices back to back
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
  out.bytes.resize(one.size() * out.copies);
  for (int i = 0; i < out.copies; ++i) {
    std::memcpy(out.bytes.data() + i * one.size(), one.data(), one.size());
  }
  return out;
}

// args: dtype code, rows, cols, tokens, threads, dram (0/1).
void BM_MatMul(benchmark::State& state) {
  const DType dtype = static_cast<DType>(state.range(0));
  const int64_t rows = state.range(1), cols = state.range(2);
  const int64_t tokens = state.range(3);
  const int threads = static_cast<int>(state.range(4));
  const bool dram = state.range(5) != 0;
  Weights weights = MakeWeights(dtype, rows, cols, dram);
  std::mt19937 rng(2);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(tokens * cols));
  for (float& v : x) v = d(rng);
  std::vector<float> out(static_cast<size_t>(tokens * rows));
  const KernelTable& k = OptimizedKernels();
  ThreadPool& pool = Pool(threads);
  MatMulInput in;
  int copy = 0;
  for (auto _ : state) {
    WeightMatrix w = weights.w;
    w.data = weights.bytes.data() + copy * weights.matrix_bytes;
    copy = (copy + 1) % weights.copies;
    // As Session::Linear: prepare once, then rows in chunks of whole tiles.
    k.prepare_matmul(x.data(), tokens, w, &in);
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
  for (int dtype : {int(DType::kQ4), int(DType::kQ8), int(DType::kBF16)}) {
    for (int threads : {1, 2}) {
      // Decode: matrix-vector; cache-resident and from memory.
      b->Args({dtype, 2048, 8192, 1, threads, 1});
      b->Args({dtype, 8192, 2048, 1, threads, 1});
      b->Args({dtype, 512, 2048, 1, threads, 0});
      // Prefill: 64 tokens (compute-bound).
      b->Args({dtype, 2048, 2048, 64, threads, 0});
      b->Args({dtype, 2048, 8192, 64, threads, 0});
    }
  }
}
BENCHMARK(BM_MatMul)->Apply(DecodeAndPrefillShapes)->UseRealTime();

}  // namespace
}  // namespace llmpack::runtime

BENCHMARK_MAIN();
