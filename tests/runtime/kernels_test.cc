// Optimized (Highway) kernels against the scalar reference over odd sizes,
// plus RoPE frequencies and the thread pool.
#include "runtime/kernels.h"

#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <future>
#include <iostream>
#include <iterator>
#include <mutex>
#include <numbers>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "runtime/rope.h"
#include "runtime/thread_pool.h"

namespace llmpack::runtime {
namespace {

// Sums may be reordered (several SIMD accumulators): the error bound scales
// with the sum of |terms|, times a few f32 epsilons per log2(n) level.
constexpr double kSumRelTol = 1e-5;
// Element-wise results that go through exp (Highway's Exp is within a few
// ulp of std::exp).
constexpr double kExpRelTol = 2e-6;
// RMSNorm: one reordered reduction feeding a per-element scale.
constexpr double kNormRelTol = 1e-5;

const int64_t kSizes[] = {1, 3, 7, 16, 17, 31, 64, 100, 257};

std::vector<float> Random(size_t n, uint32_t seed, float lo = -1,
                          float hi = 1) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

TEST(KernelsTest, OptimizedIsNotScalar) {
  // Which target the dispatch chose (scripts/ci_aarch64.sh shows it).
  std::cout << "optimized kernels: " << OptimizedKernels().name << "\n";
  EXPECT_STREQ(ScalarKernels().name, "scalar");
  EXPECT_NE(std::string(OptimizedKernels().name).find("highway"),
            std::string::npos);
}

class MatMulTest : public ::testing::TestWithParam<DType> {};

TEST_P(MatMulTest, MatchesScalarOverOddShapes) {
  const DType dtype = GetParam();
  const KernelTable& ref = ScalarKernels();
  const KernelTable& opt = OptimizedKernels();
  for (int64_t cols : kSizes) {
    for (int64_t rows : {1, 5, 9}) {
      for (int64_t tokens : {1, 3}) {
        const auto wf = Random(rows * cols, 7 + cols);
        std::vector<uint8_t> w(wf.size() * DTypeSize(dtype));
        ASSERT_TRUE(
            ConvertElements(DType::kF32, wf.data(), dtype, w.data(), wf.size())
                .ok());
        const WeightMatrix m{dtype, w.data(), rows, cols, {}};
        const auto x = Random(tokens * cols, 11 + rows);
        std::vector<float> a(tokens * rows, -1), b(tokens * rows, -2);
        MatMulInput ref_in, opt_in;
        ref.prepare_matmul(x.data(), tokens, m, &ref_in, nullptr);
        opt.prepare_matmul(x.data(), tokens, m, &opt_in, nullptr);
        ref.matmul(ref_in, m, 0, rows, a.data(), rows);
        opt.matmul(opt_in, m, 0, rows, b.data(), rows);
        std::vector<float> wide(wf.size());
        ToF32(dtype, w.data(), wide.data(), wide.size());
        for (int64_t t = 0; t < tokens; ++t) {
          for (int64_t r = 0; r < rows; ++r) {
            double bound = 0;
            for (int64_t c = 0; c < cols; ++c) {
              bound += std::abs(x[t * cols + c] * wide[r * cols + c]);
            }
            EXPECT_NEAR(a[t * rows + r], b[t * rows + r],
                        kSumRelTol * bound + 1e-30)
                << DTypeName(dtype) << " cols " << cols << " row " << r;
          }
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllWeightTypes, MatMulTest,
                         ::testing::Values(DType::kF32, DType::kF16,
                                           DType::kBF16));

// The tiled prefill path: rows longer than one column block (2048) with a
// scalar tail, token counts that fill whole tiles, leave a partial one, and
// cross the chunk of tokens kept in L2; rows split at an odd place.
TEST_P(MatMulTest, TiledPrefillMatchesScalarAcrossBlocksAndChunks) {
  const DType dtype = GetParam();
  const int64_t rows = 11, cols = 4133;
  const auto wf = Random(rows * cols, 21);
  std::vector<uint8_t> w(wf.size() * DTypeSize(dtype));
  ASSERT_TRUE(
      ConvertElements(DType::kF32, wf.data(), dtype, w.data(), wf.size()).ok());
  const WeightMatrix m{dtype, w.data(), rows, cols, {}};
  std::vector<float> wide(wf.size());
  ToF32(dtype, w.data(), wide.data(), wide.size());
  for (int64_t tokens : {2, 7, 13, 101}) {
    const auto x = Random(tokens * cols, 23 + tokens);
    std::vector<float> a(tokens * rows, -1), b(tokens * rows, -2);
    MatMulInput ref_in, opt_in;
    ScalarKernels().prepare_matmul(x.data(), tokens, m, &ref_in, nullptr);
    OptimizedKernels().prepare_matmul(x.data(), tokens, m, &opt_in, nullptr);
    ScalarKernels().matmul(ref_in, m, 0, rows, a.data(), rows);
    OptimizedKernels().matmul(opt_in, m, 0, 5, b.data(), rows);
    OptimizedKernels().matmul(opt_in, m, 5, rows, b.data(), rows);
    for (int64_t t = 0; t < tokens; ++t) {
      for (int64_t r = 0; r < rows; ++r) {
        double bound = 0;
        for (int64_t c = 0; c < cols; ++c) {
          bound += std::abs(x[t * cols + c] * wide[r * cols + c]);
        }
        ASSERT_NEAR(a[t * rows + r], b[t * rows + r], kSumRelTol * bound)
            << DTypeName(dtype) << " tokens " << tokens << " token " << t
            << " row " << r;
      }
    }
  }
}

TEST(KernelsTest, MatMulRowRangeWritesOnlyItsRows) {
  const int64_t rows = 10, cols = 13;
  const auto wf = Random(rows * cols, 3);
  const WeightMatrix m{DType::kF32, wf.data(), rows, cols, {}};
  const auto x = Random(cols, 4);
  std::vector<float> out(rows, 42.0f);
  MatMulInput in;
  OptimizedKernels().prepare_matmul(x.data(), 1, m, &in, nullptr);
  OptimizedKernels().matmul(in, m, 3, 7, out.data(), rows);
  for (int64_t r = 0; r < rows; ++r) {
    if (r < 3 || r >= 7)
      EXPECT_EQ(out[r], 42.0f) << r;
    else
      EXPECT_NE(out[r], 42.0f) << r;
  }
}

TEST(KernelsTest, ElementwiseKernelsMatchScalar) {
  const KernelTable& ref = ScalarKernels();
  const KernelTable& opt = OptimizedKernels();
  for (int64_t n : kSizes) {
    const auto x = Random(n, 100 + n, -4, 4);
    const auto w = Random(n, 200 + n, 0.5, 1.5);
    std::vector<float> a(n), b(n);
    ref.rms_norm(x.data(), w.data(), n, 1e-5f, a.data());
    opt.rms_norm(x.data(), w.data(), n, 1e-5f, b.data());
    for (int64_t i = 0; i < n; ++i) {
      EXPECT_NEAR(a[i], b[i], kNormRelTol * std::abs(a[i]) + 1e-7) << n;
    }

    a = x;
    b = x;
    ref.softmax(a.data(), n);
    opt.softmax(b.data(), n);
    double total = 0;
    for (int64_t i = 0; i < n; ++i) {
      EXPECT_NEAR(a[i], b[i], kExpRelTol * std::abs(a[i]) + 1e-9) << n;
      total += b[i];
    }
    EXPECT_NEAR(total, 1.0, 1e-5);

    a = x;
    b = x;
    ref.silu_mul(a.data(), w.data(), n);
    opt.silu_mul(b.data(), w.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      EXPECT_NEAR(a[i], b[i], kExpRelTol * std::abs(a[i]) + 1e-9) << n;
    }

    double bound = 0;
    for (int64_t i = 0; i < n; ++i) bound += std::abs(x[i] * w[i]);
    EXPECT_NEAR(ref.dot(x.data(), w.data(), n), opt.dot(x.data(), w.data(), n),
                kSumRelTol * bound);

    a = w;
    b = w;
    ref.axpy(0.37f, x.data(), a.data(), n);
    opt.axpy(0.37f, x.data(), b.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      // One rounding (fused) vs two: at most one ulp apart.
      EXPECT_NEAR(a[i], b[i], 2e-7 * (std::abs(a[i]) + 1)) << n;
    }
  }
}

// Attention output is a convex combination of value rows: its error is the
// softmax's relative error (kExpRelTol) plus reordered score sums, bounded
// by this fraction of the largest |value|.
constexpr double kAttentionTol = 1e-5;

// Keys as the KV cache holds them: transposed, key j's element d at
// [d * stride + j], with kKeyPadding readable floats past the last key (and
// 3 more, so the stride is not a round number).
struct TransposedKeys {
  std::vector<float> data;
  int64_t stride = 0;
};
TransposedKeys Transpose(const std::vector<float>& rows, int64_t len,
                         int64_t row_stride, int64_t head_dim) {
  TransposedKeys out;
  out.stride = len + kKeyPadding + 3;
  out.data.assign(static_cast<size_t>(head_dim * out.stride), 9.0f);
  for (int64_t j = 0; j < len; ++j) {
    for (int64_t d = 0; d < head_dim; ++d) {
      out.data[d * out.stride + j] = rows[j * row_stride + d];
    }
  }
  return out;
}

TEST(KernelsTest, AttentionMatchesScalar) {
  for (int64_t group : {1, 3, 4, 6}) {
    for (int64_t hd : {2, 12, 17, 64}) {
      for (int64_t len : {1, 5, 70}) {
        const int64_t v_stride = 2 * hd + 3;  // other kv heads in between
        const auto q = Random(group * hd, 31 + hd, -2, 2);
        const auto k =
            Transpose(Random(len * hd, 32 + len, -2, 2), len, hd, hd);
        const auto v = Random(len * v_stride, 33 + len);
        const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
        std::vector<float> scores(group * len), a(group * hd, 7), b(a);
        ScalarKernels().attention(q.data(), group, k.data.data(), k.stride,
                                  v.data(), v_stride, len, hd, scale,
                                  scores.data(), a.data());
        OptimizedKernels().attention(q.data(), group, k.data.data(), k.stride,
                                     v.data(), v_stride, len, hd, scale,
                                     scores.data(), b.data());
        for (int64_t i = 0; i < group * hd; ++i) {
          ASSERT_NEAR(a[i], b[i], kAttentionTol)
              << "group " << group << " head_dim " << hd << " len " << len;
        }
        if (len == 1) {  // one key: the output is its value row
          for (int64_t h = 0; h < group; ++h) {
            for (int64_t i = 0; i < hd; ++i) {
              ASSERT_NEAR(a[h * hd + i], v[i], 1e-6);
            }
          }
        }
      }
    }
  }
}

// A prompt's rows through attention_rows: blocks that start past row 0 and
// end mid-token, a partial last vector of rows, keys of earlier positions
// (pos0 > 0), head sizes with no whole vector or a scalar tail. Each table's
// rows must equal its own per-token attention exactly (so a prompt and
// token-by-token decode agree), and the optimized rows must stay within
// kAttentionTol of the scalar ones.
TEST(KernelsTest, AttentionRowsEqualPerTokenAttention) {
  struct Shape {
    int64_t group, hd, pos0, tokens, row_begin, row_end;
  };
  const Shape shapes[] = {
      {4, 64, 0, 16, 0, 64},  {4, 64, 0, 40, 64, 128}, {4, 64, 0, 40, 128, 160},
      {3, 17, 5, 30, 0, 64},  {3, 17, 5, 30, 64, 90},  {1, 12, 0, 9, 0, 9},
      {1, 80, 2, 70, 64, 70}, {8, 2, 0, 3, 1, 23},     {2, 128, 7, 5, 0, 10},
  };
  for (const Shape& sh : shapes) {
    SCOPED_TRACE(testing::Message()
                 << "group " << sh.group << " head_dim " << sh.hd << " pos0 "
                 << sh.pos0 << " rows [" << sh.row_begin << ", " << sh.row_end
                 << ")");
    const int64_t v_stride = 2 * sh.hd + 3;  // other kv heads in between
    const int64_t q_stride = sh.group * sh.hd + 5;
    const int64_t keys = sh.pos0 + sh.tokens;
    const auto q = Random(sh.tokens * q_stride, 41 + sh.hd, -2, 2);
    const auto k =
        Transpose(Random(keys * sh.hd, 42 + sh.hd, -2, 2), keys, sh.hd, sh.hd);
    const auto v = Random(keys * v_stride, 43 + sh.hd);
    const float scale = 1.0f / std::sqrt(static_cast<float>(sh.hd));
    const int64_t len = sh.pos0 + (sh.row_end - 1) / sh.group + 1;
    std::vector<float> scratch(AttentionRowsScratch(sh.hd, len));
    std::vector<float> scalar_rows(sh.tokens * q_stride, 7);
    std::vector<float> scalar_tokens(scalar_rows), rows(scalar_rows),
        tokens(scalar_rows);
    ScalarKernels().attention_rows(q.data(), q_stride, sh.group, sh.pos0,
                                   sh.row_begin, sh.row_end, k.data.data(),
                                   k.stride, v.data(), v_stride, sh.hd, scale,
                                   scratch.data(), scalar_rows.data());
    OptimizedKernels().attention_rows(q.data(), q_stride, sh.group, sh.pos0,
                                      sh.row_begin, sh.row_end, k.data.data(),
                                      k.stride, v.data(), v_stride, sh.hd,
                                      scale, scratch.data(), rows.data());
    for (int64_t r = sh.row_begin; r < sh.row_end; ++r) {
      const int64_t t = r / sh.group;
      const int64_t at = t * q_stride + r % sh.group * sh.hd;
      for (const KernelTable* table : {&ScalarKernels(), &OptimizedKernels()}) {
        table->attention(
            q.data() + at, 1, k.data.data(), k.stride, v.data(), v_stride,
            sh.pos0 + t + 1, sh.hd, scale, scratch.data(),
            (table == &ScalarKernels() ? scalar_tokens : tokens).data() + at);
      }
    }
    // Rows outside the range keep their 7s in all four.
    for (size_t i = 0; i < rows.size(); ++i) {
      ASSERT_EQ(scalar_rows[i], scalar_tokens[i]) << "element " << i;
      ASSERT_EQ(rows[i], tokens[i]) << "element " << i;
      ASSERT_NEAR(rows[i], scalar_rows[i], kAttentionTol) << "element " << i;
    }
  }
}

TEST(KernelsTest, SiluSaturatesWithoutNan) {
  std::vector<float> g(19, -1000.0f), up(19, 1.0f);
  g[3] = 1000.0f;
  OptimizedKernels().silu_mul(g.data(), up.data(), 19);
  for (int i = 0; i < 19; ++i) {
    EXPECT_FALSE(std::isnan(g[i])) << i;
    EXPECT_NEAR(g[i], i == 3 ? 1000.0f : 0.0f, 1e-6) << i;
  }
}

TEST(KernelsTest, RopeMatchesScalarForEveryHeadDim) {
  for (int64_t hd : {2, 8, 16, 34, 64, 128}) {
    const auto c = Random(hd / 2, 5, -1, 1);
    const auto s = Random(hd / 2, 6, -1, 1);
    auto a = Random(hd, 7);
    auto b = a;
    ScalarKernels().rope(a.data(), c.data(), s.data(), hd);
    OptimizedKernels().rope(b.data(), c.data(), s.data(), hd);
    for (int64_t i = 0; i < hd; ++i) EXPECT_NEAR(a[i], b[i], 1e-6) << hd;
  }
}

TEST(RopeTest, DefaultFrequenciesAreThetaPowers) {
  RopeConfig rope;
  rope.theta = 10000;
  const auto inv = RopeInverseFrequencies(rope, 16);
  ASSERT_EQ(inv.size(), 8u);
  for (int i = 0; i < 8; ++i) {
    EXPECT_NEAR(inv[i], std::pow(10000.0, -2.0 * i / 16), 1e-6 * inv[i]) << i;
  }
  std::vector<float> cos, sin;
  RopeTables(inv, 5, 2, &cos, &sin);
  ASSERT_EQ(cos.size(), 16u);
  EXPECT_NEAR(cos[0], std::cos(5.0), 1e-6);  // position 5, frequency 1
  EXPECT_NEAR(sin[8], std::sin(6.0), 1e-6);  // position 6
}

TEST(RopeTest, Llama3ScalingKeepsHighAndDividesLowFrequencies) {
  RopeConfig rope;
  rope.type = "llama3";
  rope.theta = 500000;
  rope.factor = 8;
  rope.low_freq_factor = 1;
  rope.high_freq_factor = 4;
  rope.original_max_positions = 256;
  RopeConfig plain = rope;
  plain.type = "default";
  const auto scaled = RopeInverseFrequencies(rope, 16);
  const auto base = RopeInverseFrequencies(plain, 16);
  int kept = 0, divided = 0, smoothed = 0;
  for (size_t i = 0; i < base.size(); ++i) {
    const double wavelen = 2 * std::numbers::pi / base[i];
    if (wavelen < 256.0 / 4) {
      EXPECT_EQ(scaled[i], base[i]);
      ++kept;
    } else if (wavelen > 256.0) {
      EXPECT_FLOAT_EQ(scaled[i], base[i] / 8);
      ++divided;
    } else {
      EXPECT_LT(scaled[i], base[i]);
      EXPECT_GT(scaled[i], base[i] / 8);
      ++smoothed;
    }
  }
  EXPECT_GT(kept, 0);
  EXPECT_GT(divided, 0);
  EXPECT_GT(smoothed, 0);
}

TEST(ThreadPoolTest, CoversEveryItemOnce) {
  ThreadPool pool(3);
  EXPECT_EQ(pool.num_threads(), 3);
  for (int64_t n : {1, 2, 7, 100, 1001}) {
    std::vector<std::atomic<int>> hits(n);
    pool.ParallelFor(n, 4, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) hits[i]++;
    });
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << n;
  }
}

// Workers spin briefly, then sleep: loops after a pause (sleeping workers)
// and back to back (spinning workers) both cover every item once and use
// more than the calling thread.
TEST(ThreadPoolTest, WakesSleepingAndSpinningWorkers) {
  ThreadPool pool(2);
  for (int round = 0; round < 6; ++round) {
    if (round % 2 == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(30));
    }
    std::vector<std::atomic<int>> hits(64);
    std::mutex mu;
    std::set<std::thread::id> ids;
    pool.ParallelFor(64, 1, [&](int64_t b, int64_t e) {
      {
        std::lock_guard<std::mutex> lock(mu);
        ids.insert(std::this_thread::get_id());
      }
      // Long enough that the worker takes some items.
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      for (int64_t i = b; i < e; ++i) hits[i]++;
    });
    for (int i = 0; i < 64; ++i) ASSERT_EQ(hits[i].load(), 1) << round;
    EXPECT_EQ(ids.size(), 2u) << round;
  }
}

// A worker held outside any loop (here by a signal handler that waits, as
// a thread preempted by the loader would be) does not hold up the caller:
// loops run on the caller alone and cover every item once. The caller waits
// only for chunks a worker is running, and once released the worker takes
// part again. Before the pool counted workers into a loop, the held worker
// kept the first loop from returning.
//
// The signal is sent only once the worker sleeps in the kernel (between
// loops that is its condition-variable wait, which has released the pool's
// mutex). Sent earlier it may land while the worker holds that mutex on its
// way to sleep, and a worker parked there would block the next loop's start
// for a reason the test is not about.
bool WaitUntilThreadSleeps(pid_t tid) {
  const std::string path = "/proc/self/task/" + std::to_string(tid) + "/stat";
  for (int attempt = 0; attempt < 10000; ++attempt) {
    std::ifstream in(path);
    const std::string stat{std::istreambuf_iterator<char>(in), {}};
    // The state letter follows the ") " that ends the thread's name.
    const size_t name_end = stat.rfind(')');
    if (name_end != std::string::npos && name_end + 2 < stat.size() &&
        stat[name_end + 2] == 'S') {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

sem_t held_worker_parked;
sem_t held_worker_released;
void ParkHeldWorker(int) {
  sem_post(&held_worker_parked);
  while (sem_wait(&held_worker_released) != 0) {
  }
}

TEST(ThreadPoolTest, CallerDoesNotWaitForAWorkerOutsideTheLoop) {
  ThreadPool pool(2);
  const std::thread::id caller = std::this_thread::get_id();
  std::mutex mu;
  std::set<std::thread::id> ids;
  pthread_t worker{};
  pid_t worker_tid = 0;
  bool found = false;
  for (int attempt = 0; attempt < 20 && !found; ++attempt) {
    pool.ParallelFor(16, 1, [&](int64_t, int64_t) {
      {
        std::lock_guard<std::mutex> lock(mu);
        if (std::this_thread::get_id() != caller && !found) {
          worker = pthread_self();
          worker_tid = gettid();
          found = true;
        }
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    });
  }
  ASSERT_TRUE(found) << "the worker never took an item";

  ASSERT_EQ(sem_init(&held_worker_parked, 0, 0), 0);
  ASSERT_EQ(sem_init(&held_worker_released, 0, 0), 0);
  struct sigaction park {
  }, previous{};
  park.sa_handler = ParkHeldWorker;
  sigemptyset(&park.sa_mask);
  ASSERT_EQ(sigaction(SIGUSR1, &park, &previous), 0);
  ASSERT_TRUE(WaitUntilThreadSleeps(worker_tid))
      << "the worker never went to sleep between loops";
  ASSERT_EQ(pthread_kill(worker, SIGUSR1), 0);
  while (sem_wait(&held_worker_parked) != 0) {
  }

  // Loops on another thread, so that a pool that waits for the held worker
  // fails the test instead of hanging it.
  std::vector<std::atomic<int>> hits(1000);
  auto loops = std::async(std::launch::async, [&] {
    std::set<std::thread::id> seen;
    for (int loop = 0; loop < 50; ++loop) {
      pool.ParallelFor(20, 1, [&](int64_t b, int64_t e) {
        std::lock_guard<std::mutex> lock(mu);
        seen.insert(std::this_thread::get_id());
        for (int64_t i = b; i < e; ++i) hits[loop * 20 + i]++;
      });
    }
    return seen;
  });
  const bool returned =
      loops.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  sem_post(&held_worker_released);
  const std::set<std::thread::id> seen = loops.get();
  ASSERT_EQ(sigaction(SIGUSR1, &previous, nullptr), 0);
  EXPECT_TRUE(returned) << "the loops waited for the held worker";
  EXPECT_EQ(seen.size(), 1u) << "only the looping thread ran items";
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(hits[i].load(), 1) << i;

  // Released, the worker joins loops again.
  bool worker_ran = false;
  for (int attempt = 0; attempt < 20 && !worker_ran; ++attempt) {
    pool.ParallelFor(16, 1, [&](int64_t, int64_t) {
      {
        std::lock_guard<std::mutex> lock(mu);
        if (std::this_thread::get_id() != caller) worker_ran = true;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    });
  }
  EXPECT_TRUE(worker_ran);
  sem_destroy(&held_worker_parked);
  sem_destroy(&held_worker_released);
}

}  // namespace
}  // namespace llmpack::runtime
