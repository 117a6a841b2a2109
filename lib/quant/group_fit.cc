#include "quant/group_fit.h"

#include <algorithm>
#include <cmath>

namespace llmpack::quant {
namespace {

// Clipping ratios tried by the search, as fractions of the scale that just
// covers the group's range. Below ~0.5 a 4-bit group loses more to clipping
// than it gains in resolution; above 1 leaves slack that can help the integer
// zero point land better. 24 steps of 0.025 keep the search cheap (a few
// thousand multiply-adds per group of 32) and the least-squares refinement
// afterwards removes the remaining grid coarseness.
constexpr float kFirstRatio = 0.5f;
constexpr float kRatioStep = 0.025f;
constexpr int kRatioSteps = 25;
// Alternating least-squares rounds after the grid (codes fixed -> best
// scale -> new codes). Converges in 2-3 rounds in practice.
constexpr int kRefineRounds = 4;

struct Range {
  float min;
  float max;
};

Range MinMax(const float* x, int64_t n) {
  Range r{x[0], x[0]};
  for (int64_t i = 1; i < n; ++i) {
    r.min = std::min(r.min, x[i]);
    r.max = std::max(r.max, x[i]);
  }
  return r;
}

int Clamp(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

// Least-squares scale for fixed codes: argmin_s sum w (x - s d)^2 with
// d = code - zero. Zero when every d is zero.
float LeastSquaresScale(const RowLayout& layout, const GroupParams& p,
                        const float* x, const float* w, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = QuantizeValue(layout, p, x[i]) - p.zero;
    const double wi = w == nullptr ? 1.0 : w[i];
    num += wi * x[i] * d;
    den += wi * d * d;
  }
  return den > 0 ? static_cast<float>(num / den) : 0.0f;
}

// Keeps `candidate` in `best` when its error is lower.
void Consider(const RowLayout& layout, const GroupParams& candidate,
              const float* x, const float* w, int64_t n, GroupParams* best,
              double* best_error) {
  const double e = GroupError(layout, candidate, x, w, n);
  if (e < *best_error) {
    *best_error = e;
    *best = candidate;
  }
}

}  // namespace

namespace {

// Rounds half to even by adding and subtracting 1.5 * 2^23: exact for
// |t| <= 2^22 and, unlike nearbyint, inlined without SSE4.1.
inline float RoundToInt(float t) {
  constexpr float kRoundMagic = 12582912.0f;
  return (t + kRoundMagic) - kRoundMagic;
}

// code - zero for x, with `inv` = 1 / scale and the offset range [lo, hi].
// Clamps before rounding, so x / tiny scale cannot overflow.
// std::max/std::min keep the comparisons of the ternary form (so NaN and
// signed zeros behave the same) but compile to maxss/minss without branches.
inline float Offset(float x, float inv, float lo, float hi) {
  return RoundToInt(std::min(std::max(x * inv, lo), hi));
}

}  // namespace

int QuantizeValue(const RowLayout& layout, const GroupParams& p, float x) {
  if (p.scale == 0) return p.zero;
  const float lo = static_cast<float>(layout.CodeMin() - p.zero);
  const float hi = static_cast<float>(layout.CodeMax() - p.zero);
  return static_cast<int>(Offset(x, 1.0f / p.scale, lo, hi)) + p.zero;
}

void QuantizeGroup(const RowLayout& layout, const GroupParams& p,
                   const float* x, int64_t n, int* codes) {
  if (p.scale == 0) {
    std::fill(codes, codes + n, p.zero);
    return;
  }
  const float lo = static_cast<float>(layout.CodeMin() - p.zero);
  const float hi = static_cast<float>(layout.CodeMax() - p.zero);
  const float inv = 1.0f / p.scale;
  for (int64_t i = 0; i < n; ++i) {
    codes[i] = static_cast<int>(Offset(x[i], inv, lo, hi)) + p.zero;
  }
}

double GroupError(const RowLayout& layout, const GroupParams& p, const float* x,
                  const float* weights, int64_t n) {
  if (p.scale == 0) {
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) {
      sum += (weights == nullptr ? 1.0 : weights[i]) * double{x[i]} * x[i];
    }
    return sum;
  }
  const float lo = static_cast<float>(layout.CodeMin() - p.zero);
  const float hi = static_cast<float>(layout.CodeMax() - p.zero);
  const float inv = 1.0f / p.scale;
  // Float accumulation over one group (at most a few hundred terms) is
  // accurate to ~1e-5 relative, far below the differences the search ranks.
  float sum = 0;
  if (weights == nullptr) {
    for (int64_t i = 0; i < n; ++i) {
      const float d = x[i] - p.scale * Offset(x[i], inv, lo, hi);
      sum += d * d;
    }
  } else {
    for (int64_t i = 0; i < n; ++i) {
      const float d = x[i] - p.scale * Offset(x[i], inv, lo, hi);
      sum += weights[i] * d * d;
    }
  }
  return sum;
}

GroupParams FitMinMax(const RowLayout& layout, const float* x, int64_t n) {
  const int lo = layout.CodeMin();
  const int hi = layout.CodeMax();
  const Range r = MinMax(x, n);
  GroupParams p;
  if (!layout.format.zero_point) {
    p.zero = layout.ImplicitZero();
    const float extreme = -r.min > r.max ? r.min : r.max;
    // extreme / (lo - zero) maps the extreme onto code lo exactly.
    p.scale = RoundScale(layout, extreme / static_cast<float>(lo - p.zero));
    return p;
  }
  const float rmin = std::min(r.min, 0.0f);
  const float rmax = std::max(r.max, 0.0f);
  p.scale = RoundScale(layout, (rmax - rmin) / static_cast<float>(hi - lo));
  if (p.scale == 0) {
    p.zero = Clamp(0, lo, hi);
    return p;
  }
  p.zero = Clamp(static_cast<int>(std::lround(lo - rmin / p.scale)), lo, hi);
  return p;
}

GroupParams FitSearch(const RowLayout& layout, const float* x,
                      const float* weights, int64_t n) {
  GroupParams best = FitMinMax(layout, x, n);
  double best_error = GroupError(layout, best, x, weights, n);
  if (best.scale == 0 || best_error == 0) return best;
  const int lo = layout.CodeMin();
  const int hi = layout.CodeMax();
  const Range r = MinMax(x, n);

  if (!layout.format.zero_point) {
    const int z = layout.ImplicitZero();
    // Both signs of the scale: the code range is lopsided (-8..7), so the
    // sign decides which side of the data gets the extra code.
    const float below = static_cast<float>(z - lo);  // 8 for q4
    const float above = static_cast<float>(hi - z);  // 7 for q4
    const float cover_pos = std::max(r.max / above, -r.min / below);
    const float cover_neg = -std::max(-r.min / above, r.max / below);
    for (const float cover : {cover_pos, cover_neg}) {
      for (int k = 0; k < kRatioSteps; ++k) {
        const float ratio = kFirstRatio + kRatioStep * static_cast<float>(k);
        Consider(layout, {RoundScale(layout, cover * ratio), z}, x, weights, n,
                 &best, &best_error);
      }
    }
  } else {
    const float rmin = std::min(r.min, 0.0f);
    const float rmax = std::max(r.max, 0.0f);
    const float levels = static_cast<float>(hi - lo);
    for (int k = 0; k < kRatioSteps; ++k) {
      const float ratio = kFirstRatio + kRatioStep * static_cast<float>(k);
      const float s = RoundScale(layout, (rmax - rmin) / levels * ratio);
      if (s == 0) continue;
      // Zero points that keep the minimum exact, the maximum exact, or
      // centre the clipping: the best one depends on where the mass is.
      const float centre = 0.5f * (lo + hi) - 0.5f * (rmin + rmax) / s;
      const int zs[] = {static_cast<int>(std::lround(lo - rmin / s)),
                        static_cast<int>(std::lround(hi - rmax / s)),
                        static_cast<int>(std::floor(centre)),
                        static_cast<int>(std::ceil(centre))};
      for (int z : zs) {
        Consider(layout, {s, Clamp(z, lo, hi)}, x, weights, n, &best,
                 &best_error);
      }
    }
  }

  for (int round = 0; round < kRefineRounds; ++round) {
    const GroupParams before = best;
    const int zmin =
        layout.format.zero_point ? std::max(lo, best.zero - 1) : best.zero;
    const int zmax =
        layout.format.zero_point ? std::min(hi, best.zero + 1) : best.zero;
    for (int z = zmin; z <= zmax; ++z) {
      const GroupParams start{before.scale, z};
      const float s =
          RoundScale(layout, LeastSquaresScale(layout, start, x, weights, n));
      if (s != 0) Consider(layout, {s, z}, x, weights, n, &best, &best_error);
    }
    if (best.scale == before.scale && best.zero == before.zero) break;
  }
  return best;
}

}  // namespace llmpack::quant
