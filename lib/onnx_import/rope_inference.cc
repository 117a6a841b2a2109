#include "onnx_import/rope_inference.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numbers>

#include "absl/strings/str_cat.h"

namespace llmpack::onnx_import {
namespace {

// The graph's frequencies are f32 and torch computed them in f32, so a match
// within this relative error is as exact as the data allows; a wrong theta
// or scaling is off by far more at the low frequencies.
constexpr double kMatchTolerance = 1e-5;
// Ratios to the unscaled frequencies within this are "unscaled" or "fully
// scaled" when classifying frequencies before fitting.
constexpr double kClassifyTolerance = 1e-4;

// The value with the fewest significant digits within `rel` of x, so that
// 499999.7 becomes 500000 and 9.99999975e-06 becomes 1e-05.
double NiceNumber(double x, double rel) {
  if (x == 0 || !std::isfinite(x)) return x;
  for (int digits = 1; digits <= 15; ++digits) {
    // Through decimal text, so 5e5 comes back as exactly 500000.
    char buf[40];
    std::snprintf(buf, sizeof(buf), "%.*g", digits, x);
    const double c = std::strtod(buf, nullptr);
    if (std::fabs(c - x) <= rel * std::fabs(x)) return c;
  }
  return x;
}

std::vector<double> DefaultFrequencies(double theta, int64_t head_dim) {
  std::vector<double> inv(head_dim / 2);
  for (size_t i = 0; i < inv.size(); ++i) {
    inv[i] = 1.0 / std::pow(theta, 2.0 * i / head_dim);
  }
  return inv;
}

// Weighted least squares for ln(theta) from frequencies assumed unscaled:
// ln(inv_i) = -(2i/d) ln(theta); later indices pin theta down best.
double FitTheta(absl::Span<const double> inv, const std::vector<size_t>& idx,
                int64_t head_dim) {
  double num = 0, den = 0;
  for (size_t i : idx) {
    const double x = 2.0 * i / head_dim;
    num += -std::log(inv[i]) * x;
    den += x * x;
  }
  return std::exp(num / den);
}

bool Matches(absl::Span<const double> got, const std::vector<double>& want) {
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::fabs(got[i] - want[i]) > kMatchTolerance * want[i]) return false;
  }
  return true;
}

}  // namespace

std::vector<double> RopeInverseFrequencies(const RopeConfig& rope,
                                           int64_t head_dim) {
  std::vector<double> inv = DefaultFrequencies(rope.theta, head_dim);
  if (rope.type != "llama3") return inv;
  const double old_len = static_cast<double>(rope.original_max_positions);
  const double low_wavelen = old_len / rope.low_freq_factor;
  const double high_wavelen = old_len / rope.high_freq_factor;
  for (double& f : inv) {
    const double wavelen = 2 * std::numbers::pi / f;
    if (wavelen > low_wavelen) {
      f /= rope.factor;
    } else if (wavelen >= high_wavelen) {
      const double smooth = (old_len / wavelen - rope.low_freq_factor) /
                            (rope.high_freq_factor - rope.low_freq_factor);
      f = (1 - smooth) * f / rope.factor + smooth * f;
    }
  }
  return inv;
}

absl::StatusOr<std::vector<double>> InverseFrequenciesFromTables(
    absl::Span<const double> cos, absl::Span<const double> sin, int64_t rows,
    int64_t cols) {
  if (rows < 2 || cols < 1 || cos.size() != static_cast<size_t>(rows * cols) ||
      sin.size() != cos.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cos/sin tables must be [positions >= 2, n]; found ", rows,
                     " x ", cols));
  }
  auto at = [&](absl::Span<const double> t, int64_t p, int64_t i) {
    return t[p * cols + i];
  };
  int64_t n = cols;
  if (cols % 2 == 0) {
    bool repeated = true;
    for (int64_t p = 0; p < rows && repeated; ++p) {
      for (int64_t i = 0; i < cols / 2 && repeated; ++i) {
        repeated = at(cos, p, i) == at(cos, p, i + cols / 2) &&
                   at(sin, p, i) == at(sin, p, i + cols / 2);
      }
    }
    if (repeated) n = cols / 2;
  }
  std::vector<double> inv(n);
  for (int64_t i = 0; i < n; ++i) {
    const double estimate = std::atan2(at(sin, 1, i), at(cos, 1, i));
    if (!(estimate > 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("column ", i, " does not rotate forward (angle ",
                       estimate, " at position 1)"));
    }
    const int64_t p =
        std::clamp<int64_t>(static_cast<int64_t>(3.0 / estimate), 1, rows - 1);
    inv[i] = std::atan2(at(sin, p, i), at(cos, p, i)) / p;
  }
  // Position 0 is angle 0 for every frequency; the first frequency is 1.
  if (std::fabs(inv[0] - 1) < 1e-6) inv[0] = 1;
  return inv;
}

absl::StatusOr<RopeConfig> InferRope(absl::Span<const double> inv,
                                     int64_t head_dim) {
  const size_t n = inv.size();
  if (head_dim <= 0 || 2 * n != static_cast<size_t>(head_dim)) {
    return absl::UnimplementedError(absl::StrCat(
        "RoPE: the graph has ", n, " inverse frequencies but head_dim ",
        head_dim, " needs ", head_dim / 2,
        " (partial rotary embeddings are not supported)"));
  }
  if (n < 2 || inv[0] != 1.0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "RoPE: inverse frequencies must start at 1 (theta^0) and have at "
        "least 2 entries; found ",
        n, " starting at ", n ? inv[0] : 0.0));
  }
  for (double f : inv) {
    if (!(f > 0 && f <= 1)) {
      return absl::InvalidArgumentError(
          absl::StrCat("RoPE: inverse frequency ", f, " is outside (0, 1]"));
    }
  }
  // Theta from the unscaled (highest) frequencies: start from index 1 and
  // widen to every frequency consistent with the fit.
  std::vector<size_t> unscaled = {1};
  double theta = FitTheta(inv, unscaled, head_dim);
  for (int round = 0; round < 3; ++round) {
    const std::vector<double> base = DefaultFrequencies(theta, head_dim);
    std::vector<size_t> next;
    for (size_t i = 1; i < n; ++i) {
      if (std::fabs(inv[i] / base[i] - 1) < 1e-3) next.push_back(i);
    }
    if (next.empty()) break;
    unscaled = std::move(next);
    theta = FitTheta(inv, unscaled, head_dim);
  }
  RopeConfig rope;
  rope.theta = NiceNumber(theta, 1e-6);
  if (Matches(inv, DefaultFrequencies(rope.theta, head_dim))) return rope;

  // Llama 3: high frequencies unscaled, low ones divided by `factor`, a
  // band in between interpolated linearly in 1/wavelength.
  const std::vector<double> base = DefaultFrequencies(rope.theta, head_dim);
  std::vector<double> ratio(n), wavelen(n);
  for (size_t i = 0; i < n; ++i) {
    ratio[i] = inv[i] / base[i];
    wavelen[i] = 2 * std::numbers::pi / base[i];
  }
  rope.type = "llama3";
  rope.factor = NiceNumber(1 / ratio[n - 1], kClassifyTolerance);
  rope.low_freq_factor = 1;
  rope.high_freq_factor = 4;
  std::vector<size_t> medium;
  size_t last_unscaled = 0, first_scaled = n;
  for (size_t i = 0; i < n; ++i) {
    if (std::fabs(ratio[i] - 1) < kClassifyTolerance) {
      last_unscaled = i;
    } else if (std::fabs(ratio[i] * rope.factor - 1) < kClassifyTolerance) {
      first_scaled = std::min(first_scaled, i);
    } else {
      medium.push_back(i);
    }
  }
  const std::string fail = absl::StrCat(
      "RoPE: the graph's ", n,
      " inverse frequencies fit neither plain RoPE nor Llama 3 scaling "
      "(best theta ",
      rope.theta, "); put the model's config.json beside it");
  if (rope.factor <= 1 || first_scaled == n ||
      (!medium.empty() &&
       (medium.front() <= last_unscaled || medium.back() >= first_scaled))) {
    return absl::InvalidArgumentError(fail);
  }
  // smooth_i = (r_i - 1/f) / (1 - 1/f) = a / wavelen_i - b with
  // a = original / (high - low) and b = low / (high - low).
  auto smooth = [&](size_t i) {
    return (ratio[i] - 1 / rope.factor) / (1 - 1 / rope.factor);
  };
  double original = 0;
  if (medium.size() >= 2) {
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (size_t i : medium) {
      const double x = 1 / wavelen[i], y = smooth(i);
      sx += x, sy += y, sxx += x * x, sxy += x * y;
    }
    const double m = static_cast<double>(medium.size());
    const double a = (m * sxy - sx * sy) / (m * sxx - sx * sx);
    const double b = (a * sx - sy) / m;
    if (!(b > 0)) return absl::InvalidArgumentError(fail);
    rope.high_freq_factor = NiceNumber(1 + 1 / b, 1e-3);
    original = a / b;
  } else if (medium.size() == 1) {
    const size_t i = medium[0];
    original = wavelen[i] *
               (rope.low_freq_factor +
                smooth(i) * (rope.high_freq_factor - rope.low_freq_factor));
  } else {
    // Any original length between these fits; prefer a power of two.
    const double lower = rope.high_freq_factor * wavelen[last_unscaled];
    const double upper = rope.low_freq_factor * wavelen[first_scaled];
    original = std::exp2(std::ceil(std::log2(lower)));
    if (original >= upper) original = std::floor((lower + upper) / 2);
  }
  rope.original_max_positions = std::llround(original);
  if (rope.original_max_positions <= 0 ||
      !Matches(inv, RopeInverseFrequencies(rope, head_dim))) {
    return absl::InvalidArgumentError(fail);
  }
  return rope;
}

}  // namespace llmpack::onnx_import
