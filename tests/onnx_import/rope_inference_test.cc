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
