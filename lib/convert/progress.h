// A one-line progress display on stderr (bytes done, MB/s, ETA), shown only
// when stderr is a terminal. Not thread-safe: one owner updates it.
#ifndef LLMPACK_CONVERT_PROGRESS_H_
#define LLMPACK_CONVERT_PROGRESS_H_

#include <chrono>
#include <cstdint>
#include <string>

namespace llmpack::convert {

class ProgressLine {
 public:
  ProgressLine(std::string label, uint64_t total_bytes, bool enabled);
  ~ProgressLine();
  void Add(uint64_t bytes);
  void Finish();
  double ElapsedSeconds() const;

 private:
  void Draw(bool force);
  std::string label_;
  uint64_t total_;
  uint64_t done_ = 0;
  bool enabled_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace llmpack::convert

#endif  // LLMPACK_CONVERT_PROGRESS_H_
