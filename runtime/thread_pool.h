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
  // be shorter), handed out dynamically; returns when all chunks are done,
  // without waiting for workers that had not started on the loop by then
  // (on a machine with no spare core, the streaming loader's thread often
  // holds one of them for a while).
  void ParallelFor(int64_t n, int64_t grain,
                   const std::function<void(int64_t, int64_t)>& fn);

 private:
  void WorkerLoop();
  void RunChunks();

  std::vector<std::thread> workers_;
  // Guards sleeping: opening a loop or setting stop_ happens under it, so a
  // worker that checked them under it cannot miss the notification.
  std::mutex mu_;
  std::condition_variable work_cv_;
  // The current loop: its number (high 32 bits), whether it is closed
  // (kClosed) and how many workers are inside it (the rest). A worker joins
  // a loop only while it is open, by one compare-exchange that counts it in;
  // the caller closes the loop once its chunks are all handed out and no
  // worker is inside. So the caller never waits for a worker that had not
  // started (one that another thread preempted, say): only for chunks
  // being run.
  std::atomic<uint64_t> loop_{0};
  std::atomic<bool> stop_{false};
  // The current loop's work, written before loop_ opens it (release) and
  // read by workers after they joined it (acquire); unchanged until closed.
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0;
  int64_t grain_ = 1;
  std::atomic<int64_t> next_{0};
};

}  // namespace llmpack::runtime

#endif  // LLMPACK_RUNTIME_THREAD_POOL_H_
