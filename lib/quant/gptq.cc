#include "quant/gptq.h"

#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace llmpack::quant {
namespace {

// In-place lower Cholesky factor of the symmetric positive definite a
// [n, n] (only the lower triangle is read and written; the upper is zeroed).
// False if a pivot is not positive.
bool CholeskyLower(std::vector<double>& a, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    double d = a[j * n + j];
    for (int64_t k = 0; k < j; ++k) d -= a[j * n + k] * a[j * n + k];
    if (!(d > 0)) return false;
    const double l = std::sqrt(d);
    a[j * n + j] = l;
    for (int64_t i = j + 1; i < n; ++i) {
      double s = a[i * n + j];
      for (int64_t k = 0; k < j; ++k) s -= a[i * n + k] * a[j * n + k];
      a[i * n + j] = s / l;
    }
    for (int64_t k = j + 1; k < n; ++k) a[j * n + k] = 0;
  }
  return true;
}

}  // namespace

absl::StatusOr<std::vector<float>> GptqInverseFactor(std::vector<double> h,
                                                     int64_t n) {
  if (static_cast<int64_t>(h.size()) != n * n) {
    return absl::InvalidArgumentError(absl::StrCat(
        "GPTQ: Hessian has ", h.size(), " entries, expected ", n, " x ", n));
  }
  double mean_diag = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (h[i * n + i] == 0) h[i * n + i] = 1;  // a channel that is always 0
    mean_diag += h[i * n + i];
  }
  mean_diag /= static_cast<double>(n);
  for (int64_t i = 0; i < n; ++i) h[i * n + i] += kGptqDampRatio * mean_diag;
  if (!CholeskyLower(h, n)) {
    return absl::InvalidArgumentError(
        "GPTQ: the calibration Hessian is not positive definite even after "
        "damping (non-finite activations?)");
  }
  // Inverse of L by forward substitution (column by column), then
  // H^-1 = L^-T L^-1.
  std::vector<double> inv(static_cast<size_t>(n * n), 0.0);
  for (int64_t j = 0; j < n; ++j) {
    inv[j * n + j] = 1.0 / h[j * n + j];
    for (int64_t i = j + 1; i < n; ++i) {
      double s = 0;
      for (int64_t k = j; k < i; ++k) s += h[i * n + k] * inv[k * n + j];
      inv[i * n + j] = -s / h[i * n + i];
    }
  }
  std::vector<double> hinv(static_cast<size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j <= i; ++j) {
      double s = 0;
      for (int64_t k = i; k < n; ++k) s += inv[k * n + i] * inv[k * n + j];
      hinv[i * n + j] = s;
      hinv[j * n + i] = s;
    }
  }
  if (!CholeskyLower(hinv, n)) {
    return absl::InvalidArgumentError(
        "GPTQ: the inverse Hessian lost positive definiteness (calibration "
        "statistics too ill-conditioned)");
  }
  // U = L'^T for H^-1 = L' L'^T.
  std::vector<float> u(static_cast<size_t>(n * n), 0.0f);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = i; j < n; ++j) {
      u[i * n + j] = static_cast<float>(hinv[j * n + i]);
    }
  }
  return u;
}

void GptqQuantizeRow(const RowLayout& layout, const float* w,
                     const float* factor, const float* fit_weights, int* codes,
                     GroupParams* params) {
  const int64_t n = layout.cols;
  std::vector<float> row(w, w + n);
  for (int64_t j = 0; j < layout.groups; ++j) {
    const int64_t begin = j * layout.format.group_size;
    const int64_t len = layout.GroupLength(j);
    const GroupParams p =
        FitSearch(layout, row.data() + begin, fit_weights + begin, len);
    params[j] = p;
    for (int64_t i = begin; i < begin + len; ++i) {
      const int c = QuantizeValue(layout, p, row[i]);
      codes[i] = c;
      const float q = p.scale * static_cast<float>(c - p.zero);
      const float* u = factor + i * n;
      const float e = (row[i] - q) / u[i];
      for (int64_t k = i + 1; k < n; ++k) row[k] -= e * u[k];
    }
  }
}

}  // namespace llmpack::quant
