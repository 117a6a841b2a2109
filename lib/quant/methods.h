// Quantization methods: turn a float matrix [rows, cols] into packed q4/q8
// rows (codec.h layout), choosing codes, scales and zero points.
//
//   rtn       min/max round-to-nearest per group (the baseline).
//   search    data-free: per group, a grid search over clipping ratio and
//             zero point minimizing the squared reconstruction error, refined
//             by least squares (group_fit.h).
//   weighted  the same search, each column's error weighted by the mean
//             square of its input activation (needs calibration).
//   gptq      GPTQ error feedback: columns are quantized left to right and
//             each column's error is pushed onto the columns not yet
//             quantized through the inverse input Hessian, so the layer's
//             output error sum_t ||(W - Q) x_t||^2 is minimized rather than
//             ||W - Q||^2; each group's parameters come from the weighted
//             search at the moment the walk reaches it (needs calibration
//             with a Hessian).
//
// Thread safety: functions are pure; QuantizeMatrix uses up to
// `threads` threads internally and may be called from any thread.
#ifndef LLMPACK_QUANT_METHODS_H_
#define LLMPACK_QUANT_METHODS_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "quant/codec.h"

namespace llmpack::quant {

enum class Method { kRtn, kSearch, kWeighted, kGptq };

// "rtn", "search", "weighted", "gptq"; errors list the known names.
absl::StatusOr<Method> ParseMethod(std::string_view name);
const char* MethodName(Method method);
// Methods that need activation statistics (InputStats) from calibration.
bool NeedsCalibration(Method method);
// Methods that need the full input Hessian, not just per-channel importance.
bool NeedsHessian(Method method);

// Calibration statistics for one matrix's input; spans may be empty for
// data-free methods.
struct Calibration {
  std::vector<float> importance;  // [cols] mean of x^2
  std::vector<double> hessian;    // [cols, cols] E[x x^T]
};

struct MatrixQuantOptions {
  Method method = Method::kSearch;
  const Calibration* calibration = nullptr;  // required by calibrated methods
  int threads = 1;
};

// Quantizes a matrix, possibly a piece of rows at a time: Create checks the
// options and does the per-matrix work once (GPTQ's inverse Hessian factor),
// Quantize then handles any run of rows. Every method treats rows
// independently, so quantizing in pieces gives the same bytes as one call.
// Thread safety: Quantize is const and may run concurrently; it uses up to
// options.threads threads internally. `options.calibration` must outlive it.
class MatrixQuantizer {
 public:
  // Errors: a calibrated method without (matching) statistics, a Hessian
  // that is not positive definite even after damping.
  static absl::StatusOr<MatrixQuantizer> Create(
      const RowLayout& layout, const MatrixQuantOptions& options);

  // Quantizes w [rows, cols] (row-major f32), rows first_row.. of the matrix
  // (first_row only names rows in errors), into rows * row_bytes bytes at
  // `out`. Errors: a non-finite weight.
  absl::Status Quantize(const float* w, int64_t rows, int64_t first_row,
                        uint8_t* out) const;

 private:
  MatrixQuantizer(const RowLayout& layout, const MatrixQuantOptions& options)
      : layout_(layout), options_(options) {}

  RowLayout layout_;
  MatrixQuantOptions options_;
  std::vector<float> gptq_factor_;  // GPTQ only: inverse Hessian factor
  std::vector<float> gptq_diag_;    // GPTQ only: Hessian diagonal
};

// Quantizes w [rows, cols] (row-major f32) into rows * layout.row_bytes
// bytes at `out` (MatrixQuantizer in one piece).
absl::Status QuantizeMatrix(const float* w, int64_t rows,
                            const RowLayout& layout,
                            const MatrixQuantOptions& options, uint8_t* out);

// How far the packed matrix is from the original.
struct MatrixError {
  double rel_rms = 0;  // ||W - Q||_F / ||W||_F
  double max_abs = 0;  // max |W - Q|
  // sum_c importance[c] * (W - Q)[r, c]^2 relative to the same of W, when
  // importance was given (the activation-weighted error); else 0.
  double rel_weighted = 0;
};

// Accumulates MatrixError over pieces of rows given in order. Each row's sums
// are computed on their own (up to `threads` threads) and added in row order,
// so the result does not depend on how the rows were split into pieces or
// threads. Not thread-safe; `importance` must outlive it.
class ErrorAccumulator {
 public:
  // importance: [cols] mean input x^2, or empty for the unweighted error.
  ErrorAccumulator(const RowLayout& layout,
                   const std::vector<float>& importance, int threads);
  // Adds rows w [rows, cols] against their packed rows.
  void Add(const float* w, int64_t rows, const uint8_t* packed);
  MatrixError Result() const;

 private:
  RowLayout layout_;
  const float* importance_;  // nullptr: unweighted
  int threads_;
  double err_ = 0, ref_ = 0, werr_ = 0, wref_ = 0, max_abs_ = 0;
};

MatrixError MeasureError(const float* w, int64_t rows, const RowLayout& layout,
                         const uint8_t* packed,
                         const std::vector<float>& importance, int threads = 1);

}  // namespace llmpack::quant

#endif  // LLMPACK_QUANT_METHODS_H_
