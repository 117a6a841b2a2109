// The quantized-activation matmul: activation quantization, the scalar
// integer reference against f32 dequantized weights, and every SIMD
// implementation (each compiled Highway target, AVX-512 VNNI when the CPU has
// it) against the scalar reference over odd shapes and every format.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "hwy/targets.h"
#include "runtime/kernels.h"
#include "runtime/quant_matmul.h"
#include "runtime/test_package.h"

namespace llmpack::runtime {
namespace {

using ::llmpack::testing::QuantizeRowNearest;

// SIMD kernels compute the reference's exact integers but sum the f32 terms
// in another order (lanes, then a tree), and fold the zero-point term per row
// instead of per block. The error of such a sum is a few f32 epsilons per
// level of the sum's tree times the sum of |terms|; the terms they may sum
// separately are bounded by Magnitude() below. 1e-5 leaves a wide margin
// over log2(4097) * 6e-8.
constexpr double kQuantSumRelTol = 1e-5;
// Rounding x * (M / amax) to the nearest code moves an element by at most
// half a step, sa / 2, in exact arithmetic. The product is an f32 of up to
// M = 16383, whose ulp is 2^-10 of a step, and the checks recompute
// scale * code in f32 too: a few such ulps, 0.5% of the half step, covers
// both.
constexpr double kActivationStepSlack = 1.005;

struct Case {
  quant::QuantFormat format;
  int64_t rows, cols, tokens;
  std::string Name() const {
    return std::string(DTypeName(format.dtype)) + " g" +
           std::to_string(format.group_size) +
           (format.zero_point ? " asym " : " sym ") +
           DTypeName(format.scale_dtype) + " " + std::to_string(rows) + "x" +
           std::to_string(cols) + " tokens " + std::to_string(tokens);
  }
};

// A quantized random matrix with one row of large values (a scale outlier).
struct Matrix {
  std::vector<float> values;
  std::vector<uint8_t> bytes;
  WeightMatrix w;
};

Matrix MakeMatrix(const quant::QuantFormat& format, int64_t rows, int64_t cols,
                  uint32_t seed) {
  Matrix m;
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 0.05f);
  m.values.resize(static_cast<size_t>(rows * cols));
  for (float& v : m.values) v = d(rng);
  for (int64_t c = 0; c < cols; ++c) m.values[c] *= 20.0f;
  m.w.dtype = format.dtype;
  m.w.rows = rows;
  m.w.cols = cols;
  m.w.layout = *quant::MakeRowLayout(format, cols);
  m.bytes.resize(static_cast<size_t>(rows * m.w.layout.row_bytes));
  for (int64_t r = 0; r < rows; ++r) {
    QuantizeRowNearest(m.w.layout, m.values.data() + r * cols,
                       m.bytes.data() + r * m.w.layout.row_bytes);
  }
  m.w.data = m.bytes.data();
  return m;
}

// Activations with varied block magnitudes, an all-zero block, and outliers.
std::vector<float> MakeActivations(int64_t tokens, int64_t cols,
                                   uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(tokens * cols));
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t block = c / kActivationBlock;
      float v = d(rng) * (1.0f + static_cast<float>(block % 5));
      if (block == 1) v = 0.0f;
      if ((c + t) % 97 == 3) v *= 30.0f;
      x[t * cols + c] = v;
    }
  }
  return x;
}

std::vector<Case> AllCases() {
  std::vector<Case> cases;
  const int64_t kCols[] = {1, 31, 33, 172, 256, 4097};
  for (int64_t cols : kCols) {
    std::set<int64_t> groups;
    for (int64_t g : {int64_t{32}, int64_t{64}, int64_t{128}, cols}) {
      if (g <= cols) groups.insert(g);
    }
    for (DType dtype : {DType::kQ4, DType::kQ8}) {
      for (int64_t group : groups) {
        for (bool zero_point : {false, true}) {
          for (DType scale : {DType::kF16, DType::kBF16}) {
            for (int64_t tokens : {1, 3, 17}) {
              // 21 rows: x86's 16-row prompt tiles and a remainder.
              const int64_t rows = cols > 1000 ? 5 : cols == 256 ? 21 : 9;
              cases.push_back(
                  {{dtype, group, scale, zero_point}, rows, cols, tokens});
            }
          }
        }
      }
    }
  }
  return cases;
}

// Sum over the reference's terms of |scale * sa| * (|q * a| + |zero * a|):
// what a reordered f32 sum of them, zero-point term apart, is relative to.
double Magnitude(const QuantizedActivations& a, int64_t t,
                 const quant::RowLayout& layout, const uint8_t* row) {
  double total = 0;
  for (int64_t c = 0; c < layout.cols; ++c) {
    const int64_t b = c / kActivationBlock;
    const int64_t g = c / layout.format.group_size;
    const double code = a.Code(t, ActivationCodeIndex(a.q4_order, a.blocks, c));
    total += std::abs(quant::GroupScale(layout, row, g) * a.Scales(t)[b]) *
             (std::abs(quant::CodeAt(layout, row, c)) +
              std::abs(quant::GroupZero(layout, row, g))) *
             std::abs(code);
  }
  return total;
}

TEST(QuantizeActivationsTest, CodeIndexIsAPermutationInBothOrders) {
  for (int64_t cols : {1, 31, 32, 33, 100, 128, 172, 4097}) {
    const int64_t blocks = (cols + kActivationBlock - 1) / kActivationBlock;
    for (bool q4 : {false, true}) {
      std::vector<int> seen(static_cast<size_t>(blocks * kActivationBlock));
      for (int64_t c = 0; c < blocks * kActivationBlock; ++c) {
        const int64_t i = ActivationCodeIndex(q4, blocks, c);
        ASSERT_GE(i, 0);
        ASSERT_LT(i, blocks * kActivationBlock);
        ++seen[i];
      }
      for (int n : seen) ASSERT_EQ(n, 1) << cols << (q4 ? " q4" : " q8");
    }
  }
  // q4 order: byte j of a block's nibbles holds elements 2j and 2j + 1,
  // which must sit at j in the even half and j in the odd half.
  EXPECT_EQ(ActivationCodeIndex(true, 4, 2 * 5), 5);
  EXPECT_EQ(ActivationCodeIndex(true, 4, 2 * 5 + 1), 64 + 5);
  EXPECT_EQ(ActivationCodeIndex(true, 4, 32 + 2), 16 + 1);
  EXPECT_EQ(ActivationCodeIndex(true, 5, 128 + 3), 128 + 16 + 1);  // m = 1
}

TEST(QuantizeActivationsTest, CodesReconstructWithinHalfAStep) {
  for (int64_t cols : {1, 33, 172, 4097}) {
    const int64_t tokens = 3;
    const auto x = MakeActivations(tokens, cols, 5);
    WeightMatrix w;
    w.dtype = DType::kQ4;
    QuantizedActivations a;
    QuantizeActivations(x.data(), tokens, cols, w, &a);
    ASSERT_EQ(a.blocks, (cols + 31) / 32);
    for (int64_t t = 0; t < tokens; ++t) {
      for (int64_t b = 0; b < a.blocks; ++b) {
        int32_t sum = 0;
        int max_code = 0;
        for (int64_t c = b * 32; c < (b + 1) * 32; ++c) {
          const int64_t i = ActivationCodeIndex(true, a.blocks, c);
          const int code = a.Code(t, i);
          EXPECT_LE(std::abs(code), kActivationCodeMax);
          EXPECT_GE(a.Low(t)[i], 0);
          if (c >= cols) {
            EXPECT_EQ(code, 0) << "padding must be zero";
            continue;
          }
          max_code = std::max(max_code, std::abs(code));
          sum += code;
          const float step = a.Scales(t)[b];
          EXPECT_LE(std::abs(x[t * cols + c] - step * code),
                    step / 2 * kActivationStepSlack)
              << cols << " t " << t << " c " << c;
        }
        if (a.Scales(t)[b] > 0) {
          EXPECT_EQ(max_code, kActivationCodeMax);
        }
        EXPECT_EQ(a.ScaledSums(t)[b], a.Scales(t)[b] * static_cast<float>(sum));
      }
    }
  }
}

// The SIMD activation quantization writes the scalar definition's bytes on
// every target.
TEST(QuantizeActivationsTest, EveryHighwayTargetWritesTheScalarBytes) {
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    for (int64_t cols : {1, 31, 32, 33, 172, 256, 4097}) {
      for (DType dtype : {DType::kQ4, DType::kQ8}) {
        SCOPED_TRACE(std::string(hwy::TargetName(target)) + " " +
                     DTypeName(dtype) + " cols " + std::to_string(cols));
        const int64_t tokens = 3;
        const auto x = MakeActivations(tokens, cols, 9);
        WeightMatrix w;
        w.dtype = dtype;
        QuantizedActivations want, got;
        QuantizeActivations(x.data(), tokens, cols, w, &want);
        QuantizeActivationsHighway(x.data(), tokens, cols, w, &got);
        EXPECT_EQ(got.blocks, want.blocks);
        EXPECT_EQ(got.q4_order, want.q4_order);
        EXPECT_EQ(got.high, want.high);
        EXPECT_EQ(got.low, want.low);
        EXPECT_EQ(got.codes, want.codes);
        EXPECT_EQ(got.scales, want.scales);
        EXPECT_EQ(got.scaled_sums, want.scaled_sums);
        // The whole codes are the planes' 128 * high + low.
        ASSERT_EQ(want.codes.size(), want.high.size());
        for (size_t i = 0; i < want.codes.size(); ++i) {
          ASSERT_EQ(want.codes[i], 128 * want.high[i] + want.low[i]) << i;
        }
      }
    }
  }
  hwy::SetSupportedTargetsForTest(0);
}

// The integer scheme differs from f32 activations times dequantized weights
// only by the activation rounding: at most sa[b] / 2 * sum |w| per block.
TEST(QuantMatMulReferenceTest, WithinActivationRoundingOfDequantizedDot) {
  double worst_ratio = 0;
  for (const Case& k : AllCases()) {
    SCOPED_TRACE(k.Name());
    const Matrix m = MakeMatrix(k.format, k.rows, k.cols, 11);
    const auto x = MakeActivations(k.tokens, k.cols, 12);
    QuantizedActivations a;
    QuantizeActivations(x.data(), k.tokens, k.cols, m.w, &a);
    std::vector<float> deq(static_cast<size_t>(k.cols));
    for (int64_t r = 0; r < k.rows; ++r) {
      quant::DequantizeRow(m.w.layout, m.w.Row(r), deq.data());
      for (int64_t t = 0; t < k.tokens; ++t) {
        double exact = 0, bound = 0, magnitude = 0;
        for (int64_t c = 0; c < k.cols; ++c) {
          exact += double(x[t * k.cols + c]) * deq[c];
          bound += a.Scales(t)[c / 32] / 2 * std::abs(deq[c]);
          magnitude += std::abs(double(x[t * k.cols + c]) * deq[c]);
        }
        const double got =
            QuantizedDotReference(a, t, m.w.layout, m.w.Row(r), 0, a.blocks);
        const double tol = bound * kActivationStepSlack +
                           kQuantSumRelTol * (magnitude + bound);
        ASSERT_NEAR(got, exact, tol) << "row " << r << " token " << t;
        if (bound > 0)
          worst_ratio = std::max(worst_ratio, std::abs(got - exact) / bound);
      }
    }
  }
  // How much of the worst-case rounding bound random data actually uses.
  RecordProperty("worst_error_over_bound", std::to_string(worst_ratio));
}

// Runs compute(begin, out) for rows [begin, rows) of an output strided like
// a Session's (stride = rows) and compares it with the reference; row 0,
// outside the range when there are more than two rows, must stay untouched.
template <typename Compute>
void ExpectRowsMatchReference(const QuantizedActivations& a, const Matrix& m,
                              const Case& k, Compute compute) {
  const int64_t begin = k.rows > 2 ? 1 : 0;
  std::vector<float> want(static_cast<size_t>(k.tokens * k.rows), -7.0f);
  std::vector<float> got(want.size(), -7.0f);
  QuantizedMatMulReference(a, m.w, begin, k.rows, want.data(), k.rows);
  compute(begin, got.data());
  for (int64_t t = 0; t < k.tokens; ++t) {
    for (int64_t r = 0; r < k.rows; ++r) {
      const size_t i = static_cast<size_t>(t * k.rows + r);
      if (r < begin) {
        ASSERT_EQ(got[i], -7.0f) << "wrote outside its rows";
        continue;
      }
      const double tol =
          kQuantSumRelTol * Magnitude(a, t, m.w.layout, m.w.Row(r)) + 1e-30;
      ASSERT_NEAR(got[i], want[i], tol) << "row " << r << " token " << t;
    }
  }
}

// The SIMD kernels take groups that are whole activation blocks (the
// dispatch sends other groups to the reference, which the table test below
// covers).
void ExpectMatchesReference(QuantMatMulFn kernel, const std::string& name) {
  for (const Case& k : AllCases()) {
    if (k.format.group_size % kActivationBlock != 0) continue;
    SCOPED_TRACE(name + " " + k.Name());
    const Matrix m = MakeMatrix(k.format, k.rows, k.cols, 21);
    const auto x = MakeActivations(k.tokens, k.cols, 22);
    QuantizedActivations a;
    QuantizeActivations(x.data(), k.tokens, k.cols, m.w, &a);
    ExpectRowsMatchReference(a, m, k, [&](int64_t begin, float* out) {
      kernel(a, m.w, begin, k.rows, out, k.rows);
    });
  }
}

TEST(QuantMatMulKernelsTest, EveryHighwayTargetMatchesReference) {
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    ExpectMatchesReference(&QuantMatMulHighway, hwy::TargetName(target));
  }
  hwy::SetSupportedTargetsForTest(0);
}

TEST(QuantMatMulKernelsTest, Avx512VnniMatchesReference) {
  const QuantMatMulFn vnni = Avx512VnniQuantMatMul();
  if (vnni == nullptr) {
    GTEST_SKIP() << "SKIPPED: this CPU or build has no AVX-512 VNNI";
  }
  ExpectMatchesReference(vnni, "avx512vnni");
}

// The whole optimized path (prepare once, matmul over row ranges) against
// the scalar set, which computes with f32 activations: they differ by the
// activation rounding bound.
TEST(QuantMatMulKernelsTest, OptimizedTableMatchesScalarTable) {
  const KernelTable& ref = ScalarKernels();
  const KernelTable& opt = OptimizedKernels();
  for (const Case& k : AllCases()) {
    SCOPED_TRACE(k.Name());
    const Matrix m = MakeMatrix(k.format, k.rows, k.cols, 31);
    const auto x = MakeActivations(k.tokens, k.cols, 32);
    MatMulInput ref_in, opt_in;
    ref.prepare_matmul(x.data(), k.tokens, m.w, &ref_in, nullptr);
    opt.prepare_matmul(x.data(), k.tokens, m.w, &opt_in, nullptr);
    ASSERT_TRUE(opt_in.quantized);
    // The codes either layout holds (panels or per-token planes).
    QuantizedActivations codes;
    QuantizeActivations(x.data(), k.tokens, k.cols, m.w, &codes);
    std::vector<float> want(static_cast<size_t>(k.tokens * k.rows));
    std::vector<float> got(want.size());
    ref.matmul(ref_in, m.w, 0, k.rows, want.data(), k.rows);
    // Two ranges, as two threads would split the rows.
    const int64_t split = k.rows / 2;
    opt.matmul(opt_in, m.w, 0, split, got.data(), k.rows);
    opt.matmul(opt_in, m.w, split, k.rows, got.data(), k.rows);
    std::vector<float> deq(static_cast<size_t>(k.cols));
    for (int64_t r = 0; r < k.rows; ++r) {
      quant::DequantizeRow(m.w.layout, m.w.Row(r), deq.data());
      for (int64_t t = 0; t < k.tokens; ++t) {
        double bound = 0, magnitude = 0;
        for (int64_t c = 0; c < k.cols; ++c) {
          bound += codes.Scales(t)[c / 32] / 2 * std::abs(deq[c]);
          magnitude += std::abs(double(x[t * k.cols + c]) * deq[c]);
        }
        const double tol =
            bound * kActivationStepSlack +
            kQuantSumRelTol * (magnitude + bound +
                               Magnitude(codes, t, m.w.layout, m.w.Row(r)));
        ASSERT_NEAR(got[t * k.rows + r], want[t * k.rows + r], tol)
            << "row " << r << " token " << t;
      }
    }
  }
}

// Token panels (prompts times q4 weights): shapes the panel matmul takes
// (whole blocks, at least kPanelMinTokens tokens), with a partial last
// panel, row counts that leave partial 8-row tiles, rows of several column
// slices (64 blocks each; 6144 columns in groups of 2048 start the second
// slice at an odd group), and enough tokens to span two token chunks.
std::vector<Case> PanelCases() {
  std::vector<Case> cases;
  for (int64_t cols : {32, 96, 256, 4096}) {
    for (int64_t group : {int64_t{32}, int64_t{64}, int64_t{128}, cols}) {
      if (group > cols || cols % group != 0) continue;
      for (bool zero_point : {false, true}) {
        for (DType scale : {DType::kF16, DType::kBF16}) {
          for (int64_t tokens : {8, 17, 40}) {
            cases.push_back({{DType::kQ4, group, scale, zero_point},
                             cols > 1000 ? 11 : 19,
                             cols,
                             tokens});
          }
        }
      }
    }
  }
  cases.push_back({{DType::kQ4, 32, DType::kF16, true}, 9, 4096, 136});
  cases.push_back({{DType::kQ4, 2048, DType::kF16, true}, 9, 6144, 24});
  cases.push_back({{DType::kQ4, 2048, DType::kBF16, false}, 9, 6144, 24});
  return cases;
}

TEST(ActivationPanelsTest, HoldQuantizeActivationsCodesAndZeroPadding) {
  for (int64_t tokens : {1, 16, 21}) {
    const int64_t cols = 96;
    const auto x = MakeActivations(tokens, cols, 41);
    WeightMatrix natural;  // q8 weights: natural code order
    natural.dtype = DType::kQ8;
    QuantizedActivations want;
    QuantizeActivations(x.data(), tokens, cols, natural, &want);
    ActivationPanels got;
    QuantizeActivationPanels(x.data(), tokens, cols, &got);
    ASSERT_EQ(got.blocks, 3);
    ASSERT_EQ(got.panels, (tokens + 15) / 16);
    for (int64_t t = 0; t < got.panels * 16; ++t) {
      const int64_t p = t / 16, i = t % 16;
      for (int64_t c = 0; c < cols; ++c) {
        const uint8_t* block = got.Codes(p, c / 32);
        const int64_t at = (c % 32 / 4) * 64 + 4 * i + c % 4;
        const int32_t code = 128 * (block[at] - 128) + block[512 + at];
        ASSERT_EQ(code, t < tokens ? want.Code(t, c) : 0)
            << "token " << t << " element " << c;
      }
      for (int64_t b = 0; b < got.blocks; ++b) {
        ASSERT_EQ(got.Scales(p, b)[i], t < tokens ? want.Scales(t)[b] : 0.0f);
      }
    }
  }
}

TEST(ActivationPanelsTest, Avx512VnniWritesTheScalarBytes) {
  const PanelKernels* panels = Avx512VnniPanelKernels();
  if (panels == nullptr) {
    GTEST_SKIP() << "SKIPPED: this CPU or build has no AVX-512 VNNI";
  }
  for (int64_t tokens : {1, 8, 33}) {
    for (int64_t cols : {32, 256}) {
      const auto x = MakeActivations(tokens, cols, 43);
      ActivationPanels want, got;
      QuantizeActivationPanels(x.data(), tokens, cols, &want);
      // A buffer reused from a larger call must not leak into this one.
      const auto larger = MakeActivations(48, cols, 44);
      StartActivationPanels(48, cols, &got);
      panels->quantize(larger.data(), 0, got.panels, &got);
      // In two ranges, as threads fill them.
      StartActivationPanels(tokens, cols, &got);
      panels->quantize(x.data(), 0, got.panels / 2, &got);
      panels->quantize(x.data(), got.panels / 2, got.panels, &got);
      const size_t bytes = static_cast<size_t>(want.panels * want.blocks *
                                               ActivationPanels::kBlockBytes);
      ASSERT_EQ(std::memcmp(want.codes.get(), got.codes.get(), bytes), 0)
          << "tokens " << tokens << " cols " << cols;
      ASSERT_EQ(want.scales, got.scales);
    }
  }
}

TEST(PanelMatMulTest, Avx512VnniMatchesReference) {
  const PanelKernels* panels = Avx512VnniPanelKernels();
  if (panels == nullptr) {
    GTEST_SKIP() << "SKIPPED: this CPU or build has no AVX-512 VNNI";
  }
  for (const Case& k : PanelCases()) {
    SCOPED_TRACE(k.Name());
    const Matrix m = MakeMatrix(k.format, k.rows, k.cols, 51);
    ASSERT_TRUE(PanelMatMulApplies(m.w, k.tokens));
    const auto x = MakeActivations(k.tokens, k.cols, 52);
    QuantizedActivations a;
    QuantizeActivations(x.data(), k.tokens, k.cols, m.w, &a);
    ActivationPanels p;
    StartActivationPanels(k.tokens, k.cols, &p);
    panels->quantize(x.data(), 0, p.panels, &p);
    ExpectRowsMatchReference(a, m, k, [&](int64_t begin, float* out) {
      panels->matmul(p, m.w, begin, k.rows, out, k.rows);
    });
  }
}

}  // namespace
}  // namespace llmpack::runtime
