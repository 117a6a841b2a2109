// A small persistent thread pool for data-parallel loops (matmul rows,
// attention heads). Threads are created once; between loops they spin for a
// short while (a forward pass starts its next loop within microseconds, and
// waking a sleeping thread costs far more) and then sleep on a condition
// variable. The pool owns its threads and joins them on destruction.
//
// Thread safety: ParallelFor may be called from one thread at a time (the
// forward pass's thread); the callback runs concurrently on disjoint ranges.
#ifndef LLMPACK_RUNTIME_THREAD_POOL_H_
#define LLMPACK_RUNTIME_THREAD_POOL_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace llmpack::runtime {

class ThreadPool {
 public:
  // `num_threads` counts the calling thread; <= 0 means all hardware threads.
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs fn(begin, end) over [0, n) in chunks of `grain` items (the last may
  // be shorter), handed out dynamically; returns when all chunks are done.
  void ParallelFor(int64_t n, int64_t grain,
                   const std::function<void(int64_t, int64_t)>& fn);

 private:
  void WorkerLoop();
  void RunChunks();

  std::vector<std::thread> workers_;
  // Guards sleeping: bumping generation_ or setting stop_ happens under it,
  // so a worker that checked them under it cannot miss the notification.
  std::mutex mu_;
  std::condition_variable work_cv_;
  std::atomic<uint64_t> generation_{0};  // bumped for every loop
  std::atomic<int> active_{0};  // workers still inside the current loop
  std::atomic<bool> stop_{false};
  // The current loop, written before generation_ is bumped (release) and
  // read by workers after they see the new generation (acquire); valid
  // until active_ drops to 0.
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0;
  int64_t grain_ = 1;
  std::atomic<int64_t> next_{0};
};

}  // namespace llmpack::runtime

#endif  // LLMPACK_RUNTIME_THREAD_POOL_H_
