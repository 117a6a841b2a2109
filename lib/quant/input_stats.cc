#include "quant/input_stats.h"

#include <algorithm>
#include <thread>

namespace llmpack::quant {

InputStats::InputStats(int64_t cols, bool with_hessian, int threads)
    : cols_(cols),
      threads_(std::max(1, threads)),
      sum_sq_(static_cast<size_t>(cols), 0.0) {
  if (with_hessian) {
    hessian_.assign(static_cast<size_t>(cols * cols), 0.0);
    batch_.assign(hessian_.size(), 0.0f);
  }
}

void InputStats::Add(const float* x, int64_t tokens) {
  for (int64_t t = 0; t < tokens; ++t) {
    const float* row = x + t * cols_;
    for (int64_t c = 0; c < cols_; ++c) sum_sq_[c] += double{row[c]} * row[c];
  }
  tokens_ += tokens;
  if (hessian_.empty()) return;
  // Accumulate one call (a window of a few hundred tokens) in float, where
  // the inner loop vectorizes, then fold into the double total so rounding
  // does not grow with the number of calibration tokens.
  // Thread t owns rows i = t, t + T, ... of the upper triangle: interleaved
  // so that the shrinking row lengths balance out.
  auto accumulate = [&](int t) {
    for (int64_t i = t; i < cols_; i += threads_) {
      float* out = batch_.data() + i * cols_;
      std::fill(out + i, out + cols_, 0.0f);
    }
    for (int64_t k = 0; k < tokens; ++k) {
      const float* row = x + k * cols_;
      for (int64_t i = t; i < cols_; i += threads_) {
        const float xi = row[i];
        if (xi == 0.0f) continue;
        float* out = batch_.data() + i * cols_;
        for (int64_t j = i; j < cols_; ++j) out[j] += xi * row[j];
      }
    }
    for (int64_t i = t; i < cols_; i += threads_) {
      for (int64_t j = i; j < cols_; ++j) {
        hessian_[i * cols_ + j] += batch_[i * cols_ + j];
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads_; ++t) pool.emplace_back(accumulate, t);
  accumulate(0);
  for (std::thread& th : pool) th.join();
}

std::vector<float> InputStats::Importance() const {
  std::vector<float> out(sum_sq_.size(), 0.0f);
  if (tokens_ == 0) return out;
  for (size_t c = 0; c < out.size(); ++c) {
    out[c] = static_cast<float>(sum_sq_[c] / static_cast<double>(tokens_));
  }
  return out;
}

std::vector<double> InputStats::Hessian() const {
  if (hessian_.empty()) return {};
  std::vector<double> h(hessian_.size());
  const double inv = tokens_ > 0 ? 1.0 / static_cast<double>(tokens_) : 0.0;
  for (int64_t i = 0; i < cols_; ++i) {
    for (int64_t j = i; j < cols_; ++j) {
      const double v = hessian_[i * cols_ + j] * inv;
      h[i * cols_ + j] = v;
      h[j * cols_ + i] = v;
    }
  }
  return h;
}

}  // namespace llmpack::quant
