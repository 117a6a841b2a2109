#include "convert/progress.h"

#include <unistd.h>

#include <cstdio>

namespace llmpack::convert {

ProgressLine::ProgressLine(std::string label, uint64_t total_bytes,
                           bool enabled)
    : label_(std::move(label)),
      total_(total_bytes),
      enabled_(enabled && ::isatty(STDERR_FILENO)),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

ProgressLine::~ProgressLine() { Finish(); }

double ProgressLine::ElapsedSeconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                       start_)
      .count();
}

void ProgressLine::Add(uint64_t bytes) {
  done_ += bytes;
  Draw(false);
}

void ProgressLine::Finish() {
  if (finished_) return;
  finished_ = true;
  if (enabled_) {
    Draw(true);
    std::fputc('\n', stderr);
  }
}

void ProgressLine::Draw(bool force) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (!force && now - last_draw_ < std::chrono::milliseconds(200)) return;
  last_draw_ = now;
  const double secs = ElapsedSeconds();
  const double mb = done_ / 1e6;
  const double rate = secs > 0 ? mb / secs : 0;
  const double eta =
      rate > 0 && total_ > done_ ? (total_ - done_) / 1e6 / rate : 0;
  std::fprintf(stderr, "\r%s: %.1f / %.1f MB  %.1f MB/s  ETA %.0fs   ",
               label_.c_str(), mb, total_ / 1e6, rate, eta);
  std::fflush(stderr);
}

}  // namespace llmpack::convert
