// Error bounds of the quantization methods (lib/quant/methods.h,
// group_fit.h, gptq.h) on synthetic data: odd sizes, a group that does not
// divide the row (172 with g 32), per-row groups, q4 and q8, symmetric and
// asymmetric.
#include "quant/methods.h"

#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "quant/gptq.h"
#include "quant/group_fit.h"
#include "quant/input_stats.h"

namespace llmpack::quant {
namespace {

// Storing a scale in f16 changes it by at most 2^-11 relative; over the 15
// steps of a q4 range that can leave the largest element up to ~0.75% of a
// step outside the grid. 1% of a step covers it with margin.
constexpr double kScaleRoundingSlack = 0.01;

std::vector<float> Gaussian(int64_t n, uint32_t seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, sigma);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = d(rng);
  return v;
}

RowLayout Layout(DType dtype, int64_t group, int64_t cols, bool zp,
                 DType scale = DType::kF16) {
  absl::StatusOr<RowLayout> l = MakeRowLayout({dtype, group, scale, zp}, cols);
  EXPECT_TRUE(l.ok()) << l.status();
  return *l;
}

std::vector<uint8_t> Quantize(const std::vector<float>& w, int64_t rows,
                              const RowLayout& layout, Method method,
                              const Calibration* cal = nullptr,
                              int threads = 1) {
  std::vector<uint8_t> out(static_cast<size_t>(rows * layout.row_bytes));
  MatrixQuantOptions o;
  o.method = method;
  o.calibration = cal;
  o.threads = threads;
  const absl::Status s = QuantizeMatrix(w.data(), rows, layout, o, out.data());
  EXPECT_TRUE(s.ok()) << s;
  return out;
}

std::vector<float> Dequantize(const std::vector<uint8_t>& packed, int64_t rows,
                              const RowLayout& layout) {
  std::vector<float> out(static_cast<size_t>(rows * layout.cols));
  for (int64_t r = 0; r < rows; ++r) {
    DequantizeRow(layout, packed.data() + r * layout.row_bytes,
                  out.data() + r * layout.cols);
  }
  return out;
}

double SquaredError(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i)
    s += double(a[i] - b[i]) * (a[i] - b[i]);
  return s;
}

// Min/max RTN: every element is within half a step (asymmetric) or one step
// (symmetric: the narrower side of -8..7 may clip by up to one code) of its
// value, in every group including the short last one.
TEST(RtnTest, ElementErrorWithinOneStepBound) {
  for (const bool zp : {true, false}) {
    for (const int64_t cols :
         {int64_t{1}, int64_t{31}, int64_t{33}, int64_t{172}}) {
      const int64_t rows = 5;
      const RowLayout layout =
          Layout(DType::kQ4, std::min<int64_t>(32, cols), cols, zp);
      const std::vector<float> w = Gaussian(rows * cols, 7 + cols);
      const std::vector<uint8_t> q = Quantize(w, rows, layout, Method::kRtn);
      const std::vector<float> d = Dequantize(q, rows, layout);
      const double steps = (zp ? 0.5 : 1.0) + kScaleRoundingSlack;
      for (int64_t r = 0; r < rows; ++r) {
        const uint8_t* row = q.data() + r * layout.row_bytes;
        for (int64_t c = 0; c < cols; ++c) {
          const double s =
              std::abs(GroupScale(layout, row, c / layout.format.group_size));
          EXPECT_LE(std::abs(w[r * cols + c] - d[r * cols + c]), steps * s)
              << "zp " << zp << " cols " << cols << " r " << r << " c " << c;
        }
      }
    }
  }
}

// The search keeps the min/max fit unless it finds something better, so it
// is never worse on any group, weighted or not, q4 or q8.
TEST(SearchTest, NeverWorseThanRtnOnAnyGroup) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> uni(0.0f, 1.0f);
  for (const DType dtype : {DType::kQ4, DType::kQ8}) {
    for (const bool zp : {true, false}) {
      const RowLayout layout = Layout(dtype, 32, 32, zp);
      for (int trial = 0; trial < 300; ++trial) {
        std::vector<float> x = Gaussian(32, 100 + trial);
        if (trial % 3 == 1) {  // heavy tail: one outlier
          x[trial % 32] *= 8.0f;
        } else if (trial % 3 == 2) {  // all positive
          for (float& v : x) v = std::abs(v) + 0.5f;
        }
        std::vector<float> wts(32);
        for (float& v : wts) v = uni(rng);
        for (const float* weights : {static_cast<const float*>(nullptr),
                                     static_cast<const float*>(wts.data())}) {
          const double rtn = GroupError(layout, FitMinMax(layout, x.data(), 32),
                                        x.data(), weights, 32);
          const double search =
              GroupError(layout, FitSearch(layout, x.data(), weights, 32),
                         x.data(), weights, 32);
          EXPECT_LE(search, rtn) << "trial " << trial;
        }
      }
    }
  }
}

// On Gaussian weights, clipping and least-squares scales must buy a clear
// improvement at 4 bits (about 20% lower squared error in practice); 10%
// fails if the search degenerates to min/max.
TEST(SearchTest, ClearlyBetterThanRtnOnGaussianQ4) {
  constexpr double kMinGain = 0.10;
  const int64_t rows = 64, cols = 172;
  for (const bool zp : {true, false}) {
    const RowLayout layout = Layout(DType::kQ4, 32, cols, zp);
    const std::vector<float> w = Gaussian(rows * cols, 11);
    const double rtn = SquaredError(
        w, Dequantize(Quantize(w, rows, layout, Method::kRtn), rows, layout));
    const double search = SquaredError(
        w,
        Dequantize(Quantize(w, rows, layout, Method::kSearch), rows, layout));
    EXPECT_LT(search, (1.0 - kMinGain) * rtn) << "zp " << zp;
  }
}

// Relative RMS error bounds per format on Gaussian weights: 4-bit group 32
// is about 0.09-0.12, per-row about twice that; 8-bit is about 0.005. The
// bounds leave ~30% headroom and fail for any broken packing.
TEST(MethodsTest, RelativeErrorBoundsPerFormat) {
  struct Case {
    DType dtype;
    int64_t group;  // 0: per-row
    bool zp;
    double max_rel_rms;
  };
  const Case cases[] = {{DType::kQ4, 32, true, 0.13},
                        {DType::kQ4, 32, false, 0.15},
                        {DType::kQ4, 0, true, 0.30},
                        {DType::kQ8, 128, false, 0.008},
                        {DType::kQ8, 32, true, 0.006}};
  const int64_t rows = 9, cols = 172;
  const std::vector<float> w = Gaussian(rows * cols, 5);
  for (const Case& c : cases) {
    const RowLayout layout = Layout(
        c.dtype, c.group == 0 ? cols : std::min(c.group, cols), cols, c.zp);
    for (const Method m : {Method::kRtn, Method::kSearch}) {
      const std::vector<uint8_t> q = Quantize(w, rows, layout, m);
      const MatrixError e = MeasureError(w.data(), rows, layout, q.data(), {});
      EXPECT_LT(e.rel_rms, c.max_rel_rms)
          << DTypeName(c.dtype) << " g" << c.group << " zp " << c.zp << " "
          << MethodName(m);
      EXPECT_GT(e.rel_rms, 0.0);
    }
  }
}

// A zero row, and a constant row whose scale is exact in f16 (-15/16 spans
// 15 steps of 1/16 asymmetric, 8 steps of 15/128 symmetric), come back
// exactly.
TEST(MethodsTest, ZeroAndConstantRowsAreExact) {
  const int64_t cols = 40;
  for (const bool zp : {true, false}) {
    const RowLayout layout = Layout(DType::kQ4, 32, cols, zp);
    std::vector<float> w(static_cast<size_t>(2 * cols), 0.0f);
    for (int64_t c = 0; c < cols; ++c) w[cols + c] = -0.9375f;
    for (const Method m : {Method::kRtn, Method::kSearch}) {
      const std::vector<float> d =
          Dequantize(Quantize(w, 2, layout, m), 2, layout);
      for (size_t i = 0; i < w.size(); ++i) {
        EXPECT_EQ(d[i], w[i]) << MethodName(m) << " zp " << zp << " i " << i;
      }
    }
  }
}

TEST(MethodsTest, ThreadCountDoesNotChangeBytes) {
  const int64_t rows = 37, cols = 172;
  const RowLayout layout = Layout(DType::kQ4, 32, cols, true);
  const std::vector<float> w = Gaussian(rows * cols, 9);
  for (const Method m : {Method::kRtn, Method::kSearch}) {
    EXPECT_EQ(Quantize(w, rows, layout, m, nullptr, 1),
              Quantize(w, rows, layout, m, nullptr, 3))
        << MethodName(m);
  }
}

// Correlated activations X [tokens, cols] with a few dominant channels, as
// in real models.
std::vector<float> Activations(int64_t tokens, int64_t cols, uint32_t seed) {
  std::vector<float> base = Gaussian(tokens * cols, seed);
  std::vector<float> mix = Gaussian(cols * cols, seed + 1, 0.3f);
  std::vector<float> x(static_cast<size_t>(tokens * cols), 0.0f);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t j = 0; j < cols; ++j) {
      float s = base[t * cols + j];
      for (int64_t k = 0; k < cols; ++k)
        s += base[t * cols + k] * mix[k * cols + j];
      x[t * cols + j] = s * (j % 7 == 0 ? 6.0f : 1.0f);
    }
  }
  return x;
}

// sum_t ||(W - Q) x_t||^2: what calibrated methods minimize.
double OutputError(const std::vector<float>& w, const std::vector<float>& q,
                   const std::vector<float>& x, int64_t rows, int64_t cols,
                   int64_t tokens) {
  double s = 0;
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t r = 0; r < rows; ++r) {
      double y = 0;
      for (int64_t c = 0; c < cols; ++c) {
        y += double(w[r * cols + c] - q[r * cols + c]) * x[t * cols + c];
      }
      s += y * y;
    }
  }
  return s;
}

Calibration CalibrationOf(const std::vector<float>& x, int64_t tokens,
                          int64_t cols) {
  InputStats stats(cols, /*with_hessian=*/true);
  stats.Add(x.data(), tokens / 2);
  stats.Add(x.data() + tokens / 2 * cols, tokens - tokens / 2);
  return {stats.Importance(), stats.Hessian()};
}

TEST(InputStatsTest, MatchesDirectSums) {
  const int64_t tokens = 13, cols = 5;
  const std::vector<float> x = Gaussian(tokens * cols, 21);
  const Calibration cal = CalibrationOf(x, tokens, cols);
  for (int64_t i = 0; i < cols; ++i) {
    for (int64_t j = 0; j < cols; ++j) {
      double s = 0;
      for (int64_t t = 0; t < tokens; ++t)
        s += double(x[t * cols + i]) * x[t * cols + j];
      EXPECT_NEAR(cal.hessian[i * cols + j], s / tokens, 1e-5);
    }
    EXPECT_NEAR(cal.importance[i], cal.hessian[i * cols + i], 1e-5);
  }
}

// Calibrated methods must beat the data-free search on the quantity they
// optimize: the output error over the calibration activations.
TEST(CalibratedMethodsTest, BeatSearchOnOutputError) {
  const int64_t rows = 24, cols = 72, tokens = 400;
  const std::vector<float> x = Activations(tokens, cols, 31);
  const Calibration cal = CalibrationOf(x, tokens, cols);
  const std::vector<float> w = Gaussian(rows * cols, 41);
  for (const int64_t group : {int64_t{32}, cols}) {
    const RowLayout layout = Layout(DType::kQ4, group, cols, true);
    auto error = [&](Method m) {
      return OutputError(
          w, Dequantize(Quantize(w, rows, layout, m, &cal), rows, layout), x,
          rows, cols, tokens);
    };
    const double search = error(Method::kSearch);
    const double weighted = error(Method::kWeighted);
    const double gptq = error(Method::kGptq);
    EXPECT_LT(weighted, search) << "group " << group;
    // GPTQ's error feedback typically removes a third or more of the output
    // error; demand at least 15%.
    EXPECT_LT(gptq, 0.85 * search) << "group " << group;
  }
}

// The package quantizer feeds big tensors a piece of rows at a time; every
// method (GPTQ included) must give the bytes of one whole-matrix call, and
// the accumulated error must not depend on the split either.
TEST(MatrixQuantizerTest, PiecesGiveTheBytesAndErrorOfOneCall) {
  const int64_t rows = 23, cols = 72, tokens = 200;
  const Calibration cal =
      CalibrationOf(Activations(tokens, cols, 5), tokens, cols);
  const std::vector<float> w = Gaussian(rows * cols, 17);
  const RowLayout layout = Layout(DType::kQ4, 32, cols, true);
  for (const Method m :
       {Method::kRtn, Method::kSearch, Method::kWeighted, Method::kGptq}) {
    const std::vector<uint8_t> whole = Quantize(w, rows, layout, m, &cal, 2);
    MatrixQuantOptions o;
    o.method = m;
    o.calibration = &cal;
    o.threads = 2;
    absl::StatusOr<MatrixQuantizer> q = MatrixQuantizer::Create(layout, o);
    ASSERT_TRUE(q.ok()) << q.status();
    std::vector<uint8_t> pieces(whole.size());
    ErrorAccumulator acc(layout, cal.importance, 3);
    for (int64_t r = 0; r < rows; r += 5) {  // 5 does not divide 23
      const int64_t n = std::min<int64_t>(5, rows - r);
      ASSERT_TRUE(q->Quantize(w.data() + r * cols, n, r,
                              pieces.data() + r * layout.row_bytes)
                      .ok());
      acc.Add(w.data() + r * cols, n, pieces.data() + r * layout.row_bytes);
    }
    EXPECT_EQ(pieces, whole) << MethodName(m);
    const MatrixError a = acc.Result();
    const MatrixError b =
        MeasureError(w.data(), rows, layout, whole.data(), cal.importance, 1);
    EXPECT_EQ(a.rel_rms, b.rel_rms) << MethodName(m);
    EXPECT_EQ(a.max_abs, b.max_abs) << MethodName(m);
    EXPECT_EQ(a.rel_weighted, b.rel_weighted) << MethodName(m);
    EXPECT_GT(a.rel_weighted, 0.0) << MethodName(m);
  }
}

TEST(MatrixQuantizerTest, NonFiniteWeightNamesItsRowInTheMatrix) {
  const RowLayout layout = Layout(DType::kQ4, 32, 64, true);
  std::vector<float> w = Gaussian(2 * 64, 3);
  w[64 + 7] = std::nanf("");
  MatrixQuantOptions o;
  o.method = Method::kRtn;
  absl::StatusOr<MatrixQuantizer> q = MatrixQuantizer::Create(layout, o);
  ASSERT_TRUE(q.ok());
  std::vector<uint8_t> out(static_cast<size_t>(2 * layout.row_bytes));
  const absl::Status s = q->Quantize(w.data(), 2, 40, out.data());
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_NE(s.message().find("row 41, column 7"), std::string::npos) << s;
}

TEST(CalibratedMethodsTest, RefuseMissingStatistics) {
  const RowLayout layout = Layout(DType::kQ4, 32, 64, true);
  std::vector<float> w = Gaussian(64, 1);
  std::vector<uint8_t> out(static_cast<size_t>(layout.row_bytes));
  for (const Method m : {Method::kWeighted, Method::kGptq}) {
    MatrixQuantOptions o;
    o.method = m;
    absl::Status s = QuantizeMatrix(w.data(), 1, layout, o, out.data());
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
    EXPECT_NE(s.message().find("64 input channels"), std::string::npos) << s;
  }
  Calibration importance_only{std::vector<float>(64, 1.0f), {}};
  MatrixQuantOptions o;
  o.method = Method::kGptq;
  o.calibration = &importance_only;
  absl::Status s = QuantizeMatrix(w.data(), 1, layout, o, out.data());
  EXPECT_NE(s.message().find("Hessian"), std::string::npos) << s;
}

TEST(MethodNamesTest, ParseRoundTripAndUnknown) {
  for (const Method m :
       {Method::kRtn, Method::kSearch, Method::kWeighted, Method::kGptq}) {
    absl::StatusOr<Method> parsed = ParseMethod(MethodName(m));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, m);
  }
  absl::StatusOr<Method> bad = ParseMethod("awesome");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("awesome"), std::string::npos);
  EXPECT_NE(bad.status().message().find("gptq"), std::string::npos);
}

TEST(GptqTest, NonFiniteHessianIsRefused) {
  std::vector<double> h = {1, 0, 0, std::nan("")};
  EXPECT_FALSE(GptqInverseFactor(h, 2).ok());
}

}  // namespace
}  // namespace llmpack::quant
