// Monotonic timestamps for the runtime's throughput and wait counters.
// Thread safety: NowNs() is safe to call from any thread.
#ifndef LLMPACK_RUNTIME_CLOCK_H_
#define LLMPACK_RUNTIME_CLOCK_H_

#include <chrono>
#include <cstdint>

namespace llmpack::runtime {

// Nanoseconds on the steady clock; only differences are meaningful.
inline int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace llmpack::runtime

#endif  // LLMPACK_RUNTIME_CLOCK_H_
