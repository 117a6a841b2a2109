#include "quant/methods.h"

#include <algorithm>
#include <cmath>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "quant/gptq.h"
#include "quant/group_fit.h"

namespace llmpack::quant {
namespace {

struct NamedMethod {
  Method method;
  const char* name;
};
constexpr NamedMethod kMethods[] = {{Method::kRtn, "rtn"},
                                    {Method::kSearch, "search"},
                                    {Method::kWeighted, "weighted"},
                                    {Method::kGptq, "gptq"}};

// Runs fn(begin, end) over [0, rows) split into `threads` contiguous chunks.
template <typename Fn>
void ParallelRows(int64_t rows, int threads, const Fn& fn) {
  const int64_t n = std::max<int64_t>(1, std::min<int64_t>(threads, rows));
  if (n == 1) {
    fn(int64_t{0}, rows);
    return;
  }
  std::vector<std::thread> pool;
  const int64_t chunk = (rows + n - 1) / n;
  for (int64_t t = 0; t < n; ++t) {
    const int64_t begin = t * chunk;
    const int64_t end = std::min(rows, begin + chunk);
    if (begin >= end) break;
    pool.emplace_back([&fn, begin, end] { fn(begin, end); });
  }
  for (std::thread& th : pool) th.join();
}

// Quantizes rows [begin, end) group by group with `fit`.
template <typename Fit>
void QuantizeRowsByGroup(const float* w, const RowLayout& layout, int64_t begin,
                         int64_t end, const Fit& fit, uint8_t* out) {
  const int64_t cols = layout.cols;
  std::vector<int> codes(static_cast<size_t>(cols));
  std::vector<float> scales(static_cast<size_t>(layout.groups));
  std::vector<int> zeros(static_cast<size_t>(layout.groups));
  for (int64_t r = begin; r < end; ++r) {
    const float* row = w + r * cols;
    for (int64_t j = 0; j < layout.groups; ++j) {
      const int64_t g0 = j * layout.format.group_size;
      const int64_t len = layout.GroupLength(j);
      const GroupParams p = fit(row + g0, g0, len);
      scales[j] = p.scale;
      zeros[j] = p.zero;
      QuantizeGroup(layout, p, row + g0, len, codes.data() + g0);
    }
    PackRow(layout, codes, scales, zeros, out + r * layout.row_bytes);
  }
}

absl::Status CheckCalibration(const RowLayout& layout,
                              const MatrixQuantOptions& options) {
  const Calibration* cal = options.calibration;
  const int64_t cols = layout.cols;
  if (cal == nullptr || static_cast<int64_t>(cal->importance.size()) != cols) {
    return absl::InvalidArgumentError(absl::StrCat(
        "method ", MethodName(options.method),
        " needs calibration statistics for ", cols, " input channels (",
        cal == nullptr ? 0 : cal->importance.size(), " given)"));
  }
  if (NeedsHessian(options.method) &&
      static_cast<int64_t>(cal->hessian.size()) != cols * cols) {
    return absl::InvalidArgumentError(absl::StrCat(
        "method ", MethodName(options.method), " needs a ", cols, " x ", cols,
        " input Hessian (", cal->hessian.size(), " entries given)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Method> ParseMethod(std::string_view name) {
  std::string known;
  for (const NamedMethod& m : kMethods) {
    if (name == m.name) return m.method;
    absl::StrAppend(&known, known.empty() ? "" : ", ", m.name);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown quantization method \"", std::string(name),
                   "\" (known: ", known, ")"));
}

const char* MethodName(Method method) {
  for (const NamedMethod& m : kMethods) {
    if (m.method == method) return m.name;
  }
  return "unknown";
}

bool NeedsCalibration(Method method) {
  return method == Method::kWeighted || method == Method::kGptq;
}

bool NeedsHessian(Method method) { return method == Method::kGptq; }

absl::StatusOr<MatrixQuantizer> MatrixQuantizer::Create(
    const RowLayout& layout, const MatrixQuantOptions& options) {
  if (NeedsCalibration(options.method)) {
    if (absl::Status s = CheckCalibration(layout, options); !s.ok()) return s;
  }
  MatrixQuantizer q(layout, options);
  if (options.method == Method::kGptq) {
    absl::StatusOr<std::vector<float>> factor =
        GptqInverseFactor(options.calibration->hessian, layout.cols);
    if (!factor.ok()) return factor.status();
    q.gptq_factor_ = *std::move(factor);
    q.gptq_diag_.resize(static_cast<size_t>(layout.cols));
    for (int64_t c = 0; c < layout.cols; ++c) {
      q.gptq_diag_[c] =
          static_cast<float>(options.calibration->hessian[c * layout.cols + c]);
    }
  }
  return q;
}

absl::Status MatrixQuantizer::Quantize(const float* w, int64_t rows,
                                       int64_t first_row, uint8_t* out) const {
  const RowLayout& layout = layout_;
  for (int64_t i = 0; i < rows * layout.cols; ++i) {
    if (!std::isfinite(w[i])) {
      return absl::InvalidArgumentError(absl::StrCat(
          "non-finite weight ", w[i], " at row ", first_row + i / layout.cols,
          ", column ", i % layout.cols));
    }
  }
  const int threads = std::max(1, options_.threads);
  switch (options_.method) {
    case Method::kRtn:
      ParallelRows(rows, threads, [&](int64_t begin, int64_t end) {
        QuantizeRowsByGroup(
            w, layout, begin, end,
            [&](const float* x, int64_t, int64_t n) {
              return FitMinMax(layout, x, n);
            },
            out);
      });
      return absl::OkStatus();
    case Method::kSearch:
    case Method::kWeighted: {
      const float* importance = options_.method == Method::kWeighted
                                    ? options_.calibration->importance.data()
                                    : nullptr;
      ParallelRows(rows, threads, [&](int64_t begin, int64_t end) {
        QuantizeRowsByGroup(
            w, layout, begin, end,
            [&](const float* x, int64_t c0, int64_t n) {
              return FitSearch(
                  layout, x, importance == nullptr ? nullptr : importance + c0,
                  n);
            },
            out);
      });
      return absl::OkStatus();
    }
    case Method::kGptq: {
      ParallelRows(rows, threads, [&](int64_t begin, int64_t end) {
        std::vector<int> codes(static_cast<size_t>(layout.cols));
        std::vector<GroupParams> params(static_cast<size_t>(layout.groups));
        std::vector<float> scales(params.size());
        std::vector<int> zeros(params.size());
        for (int64_t r = begin; r < end; ++r) {
          GptqQuantizeRow(layout, w + r * layout.cols, gptq_factor_.data(),
                          gptq_diag_.data(), codes.data(), params.data());
          for (size_t j = 0; j < params.size(); ++j) {
            scales[j] = params[j].scale;
            zeros[j] = params[j].zero;
          }
          PackRow(layout, codes, scales, zeros, out + r * layout.row_bytes);
        }
      });
      return absl::OkStatus();
    }
  }
  return absl::InvalidArgumentError("unknown quantization method");
}

absl::Status QuantizeMatrix(const float* w, int64_t rows,
                            const RowLayout& layout,
                            const MatrixQuantOptions& options, uint8_t* out) {
  absl::StatusOr<MatrixQuantizer> q = MatrixQuantizer::Create(layout, options);
  if (!q.ok()) return q.status();
  return q->Quantize(w, rows, /*first_row=*/0, out);
}

ErrorAccumulator::ErrorAccumulator(const RowLayout& layout,
                                   const std::vector<float>& importance,
                                   int threads)
    : layout_(layout),
      importance_(static_cast<int64_t>(importance.size()) == layout.cols
                      ? importance.data()
                      : nullptr),
      threads_(std::max(1, threads)) {}

void ErrorAccumulator::Add(const float* w, int64_t rows,
                           const uint8_t* packed) {
  struct RowSums {
    double err = 0, ref = 0, werr = 0, wref = 0, max_abs = 0;
  };
  const int64_t cols = layout_.cols;
  std::vector<RowSums> sums(static_cast<size_t>(rows));
  ParallelRows(rows, threads_, [&](int64_t begin, int64_t end) {
    std::vector<float> q(static_cast<size_t>(cols));
    for (int64_t r = begin; r < end; ++r) {
      DequantizeRow(layout_, packed + r * layout_.row_bytes, q.data());
      const float* row = w + r * cols;
      RowSums& s = sums[r];
      for (int64_t c = 0; c < cols; ++c) {
        const double d = double{row[c]} - q[c];
        s.err += d * d;
        s.ref += double{row[c]} * row[c];
        s.max_abs = std::max(s.max_abs, std::abs(d));
      }
      if (importance_ != nullptr) {
        for (int64_t c = 0; c < cols; ++c) {
          const double d = double{row[c]} - q[c];
          s.werr += importance_[c] * d * d;
          s.wref += importance_[c] * double{row[c]} * row[c];
        }
      }
    }
  });
  for (const RowSums& s : sums) {
    err_ += s.err;
    ref_ += s.ref;
    werr_ += s.werr;
    wref_ += s.wref;
    max_abs_ = std::max(max_abs_, s.max_abs);
  }
}

MatrixError ErrorAccumulator::Result() const {
  MatrixError e;
  e.max_abs = max_abs_;
  e.rel_rms = ref_ > 0 ? std::sqrt(err_ / ref_) : std::sqrt(err_);
  if (importance_ != nullptr) {
    e.rel_weighted = wref_ > 0 ? std::sqrt(werr_ / wref_) : 0;
  }
  return e;
}

MatrixError MeasureError(const float* w, int64_t rows, const RowLayout& layout,
                         const uint8_t* packed,
                         const std::vector<float>& importance, int threads) {
  ErrorAccumulator acc(layout, importance, threads);
  acc.Add(w, rows, packed);
  return acc.Result();
}

}  // namespace llmpack::quant
