#include "runtime/rope.h"

#include <cmath>
#include <numbers>

namespace llmpack::runtime {

std::vector<float> RopeInverseFrequencies(const RopeConfig& rope,
                                          int64_t head_dim) {
  const int64_t half = head_dim / 2;
  std::vector<float> inv(static_cast<size_t>(half));
  // transformers: 1 / (base ** (arange(0, dim, 2).float() / dim)) in f32.
  const float base = static_cast<float>(rope.theta);
  for (int64_t i = 0; i < half; ++i) {
    const float exponent =
        static_cast<float>(2 * i) / static_cast<float>(head_dim);
    inv[i] = 1.0f / std::pow(base, exponent);
  }
  if (rope.type != "llama3") return inv;
  // transformers' _compute_llama3_parameters: long wavelengths are divided
  // by `factor`, short ones kept, the band between interpolated smoothly.
  const float factor = static_cast<float>(rope.factor);
  const float low = static_cast<float>(rope.low_freq_factor);
  const float high = static_cast<float>(rope.high_freq_factor);
  const float old_len = static_cast<float>(rope.original_max_positions);
  const float low_wavelen = old_len / low;
  const float high_wavelen = old_len / high;
  for (int64_t i = 0; i < half; ++i) {
    const float wavelen = 2.0f * std::numbers::pi_v<float> / inv[i];
    float scaled = wavelen > low_wavelen ? inv[i] / factor : inv[i];
    const bool medium = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
    if (medium) {
      const float smooth = (old_len / wavelen - low) / (high - low);
      scaled = (1.0f - smooth) * scaled / factor + smooth * scaled;
    }
    inv[i] = scaled;
  }
  return inv;
}

void RopeTables(const std::vector<float>& inv_freq, int64_t first,
                int64_t count, std::vector<float>* cos,
                std::vector<float>* sin) {
  const size_t half = inv_freq.size();
  cos->resize(static_cast<size_t>(count) * half);
  sin->resize(static_cast<size_t>(count) * half);
  for (int64_t t = 0; t < count; ++t) {
    const float pos = static_cast<float>(first + t);
    for (size_t i = 0; i < half; ++i) {
      // The angle is a float32 product as in transformers; cos/sin of it
      // are then correctly rounded.
      const float angle = pos * inv_freq[i];
      (*cos)[t * half + i] = static_cast<float>(std::cos(double{angle}));
      (*sin)[t * half + i] = static_cast<float>(std::sin(double{angle}));
    }
  }
}

}  // namespace llmpack::runtime
