// Statistics of the activations that feed one Linear layer, gathered over
// calibration tokens: per-input-channel mean of x^2 (the "importance" that
// weights the reconstruction error) and, when asked for, the second-moment
// matrix E[x x^T] (the Hessian of the layer's output error, used by GPTQ).
//
// Thread safety: not thread-safe (Add uses its own threads internally);
// one accumulator per matrix input.
#ifndef LLMPACK_QUANT_INPUT_STATS_H_
#define LLMPACK_QUANT_INPUT_STATS_H_

#include <cstdint>
#include <vector>

namespace llmpack::quant {

class InputStats {
 public:
  // `with_hessian`: also accumulate the cols x cols second moments (cols^2
  // doubles of memory, tokens * cols^2 / 2 multiply-adds, split over
  // `threads` threads).
  InputStats(int64_t cols, bool with_hessian, int threads = 1);

  // Adds `tokens` rows of x ([tokens, cols], row-major).
  void Add(const float* x, int64_t tokens);

  int64_t cols() const { return cols_; }
  int64_t tokens() const { return tokens_; }
  bool has_hessian() const { return !hessian_.empty(); }
  // Mean of x[c]^2 over the tokens seen, per input channel [cols].
  std::vector<float> Importance() const;
  // E[x x^T] [cols, cols] row-major (both triangles filled); empty without
  // a Hessian.
  std::vector<double> Hessian() const;

 private:
  int64_t cols_;
  int threads_;
  int64_t tokens_ = 0;
  std::vector<double> sum_sq_;
  std::vector<double> hessian_;  // upper triangle accumulated
  std::vector<float> batch_;     // per-call float accumulator (upper)
};

}  // namespace llmpack::quant

#endif  // LLMPACK_QUANT_INPUT_STATS_H_
