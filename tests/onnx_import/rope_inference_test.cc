// RoPE parameters survive the round trip through the f32 inverse-frequency
// constant an exporter bakes into the graph.
#include "onnx_import/rope_inference.h"

#include <cmath>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace llmpack::onnx_import {
namespace {

// What an exporter stores: the frequencies rounded to f32.
std::vector<double> AsStoredInGraph(const RopeConfig& rope, int64_t head_dim) {
  std::vector<double> inv = RopeInverseFrequencies(rope, head_dim);
  for (double& f : inv) f = static_cast<float>(f);
  return inv;
}

RopeConfig Llama3(double theta, double factor, double low, double high,
                  int64_t original) {
  RopeConfig r;
  r.type = "llama3";
  r.theta = theta;
  r.factor = factor;
  r.low_freq_factor = low;
  r.high_freq_factor = high;
  r.original_max_positions = original;
  return r;
}

TEST(RopeInference, RecoversDefaultTheta) {
  for (double theta : {10000.0, 500000.0, 1000000.0, 75000.0}) {
    for (int64_t head_dim : {16, 32, 64, 96, 128}) {
      RopeConfig want;
      want.theta = theta;
      absl::StatusOr<RopeConfig> got =
          InferRope(AsStoredInGraph(want, head_dim), head_dim);
      ASSERT_TRUE(got.ok()) << got.status() << " theta " << theta;
      EXPECT_EQ(got->type, "default");
      EXPECT_EQ(got->theta, theta) << "head_dim " << head_dim;
    }
  }
}

TEST(RopeInference, RecoversLlama3Scaling) {
  // Llama 3.1 8B and the tiny fixture's parameters (one interpolated band
  // frequency at head_dim 16).
  for (const auto& [want, head_dim] :
       {std::pair{Llama3(500000, 8, 1, 4, 8192), int64_t{128}},
        std::pair{Llama3(500000, 8, 1, 4, 256), int64_t{16}},
        std::pair{Llama3(500000, 32, 1, 4, 8192), int64_t{64}}}) {
    absl::StatusOr<RopeConfig> got =
        InferRope(AsStoredInGraph(want, head_dim), head_dim);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->type, "llama3");
    EXPECT_EQ(got->theta, want.theta);
    EXPECT_EQ(got->factor, want.factor);
    EXPECT_EQ(got->low_freq_factor, 1);
    EXPECT_EQ(got->high_freq_factor, want.high_freq_factor);
    EXPECT_EQ(got->original_max_positions, want.original_max_positions);
  }
}

TEST(RopeInference, EquivalentLlama3ParametersReproduceTheFrequencies) {
  // (original, low, high) scaled together give the same frequencies; the
  // inferred form must reproduce them even if its numbers differ.
  const RopeConfig want = Llama3(500000, 8, 2, 8, 16384);
  const std::vector<double> stored = AsStoredInGraph(want, 128);
  absl::StatusOr<RopeConfig> got = InferRope(stored, 128);
  ASSERT_TRUE(got.ok()) << got.status();
  const std::vector<double> again = RopeInverseFrequencies(*got, 128);
  for (size_t i = 0; i < stored.size(); ++i) {
    EXPECT_NEAR(again[i], stored[i], 1e-5 * stored[i]) << i;
  }
}

// Tables as torch builds them: angles p * inv in f32, cos/sin in f32, the
// halves repeated (Hugging Face's cos_cached) or not (ONNX Runtime's cache).
struct Tables {
  std::vector<double> cos, sin;
  int64_t cols = 0;
};
Tables MakeTables(const std::vector<double>& inv, int64_t rows, bool repeat) {
  Tables t;
  const int64_t n = static_cast<int64_t>(inv.size());
  t.cols = repeat ? 2 * n : n;
  for (int64_t p = 0; p < rows; ++p) {
    for (int64_t c = 0; c < t.cols; ++c) {
      const float angle =
          static_cast<float>(p) * static_cast<float>(inv[c % n]);
      t.cos.push_back(std::cos(angle));
      t.sin.push_back(std::sin(angle));
    }
  }
  return t;
}

TEST(RopeInference, RecoversFrequenciesFromCosSinTables) {
  RopeConfig plain;
  plain.theta = 1000000;
  for (const auto& [want, head_dim] :
       {std::pair{Llama3(500000, 8, 1, 4, 8192), int64_t{128}},
        std::pair{plain, int64_t{32}}}) {
    for (bool repeat : {false, true}) {
      const std::vector<double> stored = AsStoredInGraph(want, head_dim);
      const Tables t = MakeTables(stored, 4096, repeat);
      absl::StatusOr<std::vector<double>> inv =
          InverseFrequenciesFromTables(t.cos, t.sin, 4096, t.cols);
      ASSERT_TRUE(inv.ok()) << inv.status();
      ASSERT_EQ(inv->size(), stored.size());
      for (size_t i = 0; i < stored.size(); ++i) {
        EXPECT_NEAR((*inv)[i], stored[i], 1e-6 * stored[i]) << i;
      }
      absl::StatusOr<RopeConfig> got = InferRope(*inv, head_dim);
      ASSERT_TRUE(got.ok()) << got.status();
      EXPECT_EQ(got->type, want.type);
      EXPECT_EQ(got->theta, want.theta);
      EXPECT_EQ(got->factor, want.factor);
      EXPECT_EQ(got->original_max_positions, want.original_max_positions);
    }
  }
}

TEST(RopeInference, RefusesPartialRotary) {
  RopeConfig rope;
  absl::StatusOr<RopeConfig> got = InferRope(AsStoredInGraph(rope, 32), 64);
  ASSERT_FALSE(got.ok());
  EXPECT_THAT(std::string(got.status().message()),
              ::testing::HasSubstr("partial rotary"));
}

TEST(RopeInference, RefusesFrequenciesOfNoKnownForm) {
  RopeConfig rope;
  rope.theta = 10000;
  std::vector<double> inv = AsStoredInGraph(rope, 64);
  // A YaRN-like bump in the middle, not monotone in the Llama 3 sense.
  inv[10] *= 0.5;
  absl::StatusOr<RopeConfig> got = InferRope(inv, 64);
  ASSERT_FALSE(got.ok());
  EXPECT_THAT(std::string(got.status().message()),
              ::testing::HasSubstr("fit neither plain RoPE nor Llama 3"));
}

}  // namespace
}  // namespace llmpack::onnx_import
