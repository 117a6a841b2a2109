#include "runtime/thread_pool.h"

#include <algorithm>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace llmpack::runtime {
namespace {

// Spin iterations before a worker sleeps, and before the waiting caller
// starts yielding its core: some tens of microseconds, the usual gap between
// two loops of a forward pass (longer spins only take CPU time from other
// processes on a busy machine).
constexpr int kSpinIterations = 1 << 11;

// ThreadPool::loop_: the loop number in the high 32 bits, then the closed
// flag, then the count of workers inside.
constexpr uint64_t kClosed = uint64_t{1} << 31;
constexpr uint64_t LoopNumber(uint64_t loop) { return loop >> 32; }
// Loop `number`, open and with no worker inside.
constexpr uint64_t OpenLoop(uint64_t number) { return number << 32; }

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

}  // namespace

ThreadPool::ThreadPool(int num_threads) {
  if (num_threads <= 0) {
    num_threads = std::max(1u, std::thread::hardware_concurrency());
  }
  for (int i = 1; i < num_threads; ++i) {
    workers_.emplace_back([this] { WorkerLoop(); });
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
  }
  work_cv_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::RunChunks() {
  for (;;) {
    const int64_t begin = next_.fetch_add(grain_);
    if (begin >= n_) return;
    (*fn_)(begin, std::min(n_, begin + grain_));
  }
}

void ThreadPool::WorkerLoop() {
  uint64_t seen = 0;  // number of the last loop this worker looked at
  for (;;) {
    bool ready = false;
    for (int i = 0; i < kSpinIterations && !ready; ++i) {
      ready = LoopNumber(loop_.load(std::memory_order_acquire)) != seen ||
              stop_.load(std::memory_order_relaxed);
      if (!ready) CpuRelax();
    }
    if (!ready) {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock, [&] {
        return stop_.load() || LoopNumber(loop_.load()) != seen;
      });
    }
    if (stop_.load()) return;
    uint64_t loop = loop_.load(std::memory_order_acquire);
    seen = LoopNumber(loop);
    // Join unless the loop closed (or a newer one opened) meanwhile.
    while ((loop & kClosed) == 0 && LoopNumber(loop) == seen) {
      if (loop_.compare_exchange_weak(loop, loop + 1,
                                      std::memory_order_acq_rel)) {
        RunChunks();
        loop_.fetch_sub(1, std::memory_order_release);
        break;
      }
    }
  }
}

void ThreadPool::ParallelFor(int64_t n, int64_t grain,
                             const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  if (workers_.empty() || n <= grain) {
    fn(0, n);
    return;
  }
  fn_ = &fn;
  n_ = n;
  grain_ = grain;
  next_.store(0, std::memory_order_relaxed);
  const uint64_t open =
      OpenLoop(LoopNumber(loop_.load(std::memory_order_relaxed)) + 1);
  {
    std::lock_guard<std::mutex> lock(mu_);
    loop_.store(open, std::memory_order_release);
  }
  work_cv_.notify_all();
  RunChunks();
  // Every chunk is handed out: close the loop once the workers inside it
  // (if any) have finished theirs.
  uint64_t expected = open;
  for (int i = 0; !loop_.compare_exchange_weak(expected, open | kClosed,
                                               std::memory_order_acq_rel);
       ++i) {
    expected = open;
    if (i < kSpinIterations) {
      CpuRelax();
    } else {
      std::this_thread::yield();
    }
  }
  fn_ = nullptr;
}

}  // namespace llmpack::runtime
