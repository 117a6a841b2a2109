// The runtime's Linear-input observer and the calibration statistics built
// on it.
#include "quantize/calibration.h"

#include <fstream>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "llmpack/package_layout.h"
#include "runtime/model.h"
#include "runtime/test_package.h"
#include "support/test_paths.h"

namespace llmpack::quantize {
namespace {
using runtime::LinearInput;

class CalibrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = tmp_.path() / "pkg";
    ASSERT_TRUE(testing::WriteTestPackage(dir_, config_, DType::kF32, 11).ok());
  }
  testing::ScopedTempDir tmp_;
  ModelConfig config_ = testing::TinyConfig();
  std::filesystem::path dir_;
};

TEST_F(CalibrationTest, ObserverSeesEveryLinearInputOnce) {
  absl::StatusOr<std::unique_ptr<runtime::Model>> model =
      runtime::Model::Open(dir_, {});
  ASSERT_TRUE(model.ok()) << model.status();
  std::vector<std::tuple<int64_t, LinearInput, int64_t, int64_t>> seen;
  const runtime::LinearInputObserver observer =
      [&](int64_t layer, LinearInput input, const float*, int64_t tokens,
          int64_t cols) { seen.emplace_back(layer, input, tokens, cols); };
  runtime::Session session(**model, 16);
  session.set_linear_input_observer(&observer);
  std::vector<float> logits;
  const std::vector<int32_t> tokens = {1, 5, 9, 13, 17};
  ASSERT_TRUE(session.Forward(tokens, runtime::LogitsRows::kAll, &logits).ok());
  std::vector<std::tuple<int64_t, LinearInput, int64_t, int64_t>> expected;
  for (int64_t l = 0; l < config_.num_layers; ++l) {
    expected.emplace_back(l, LinearInput::kAttention, 5, config_.hidden_size);
    expected.emplace_back(l, LinearInput::kAttentionOutput, 5, config_.q_dim());
    expected.emplace_back(l, LinearInput::kMlp, 5, config_.hidden_size);
    expected.emplace_back(l, LinearInput::kMlpDown, 5, config_.ffn_size);
  }
  expected.emplace_back(config_.num_layers, LinearInput::kOutput, 5,
                        config_.hidden_size);
  EXPECT_EQ(seen, expected);

  // Without logits the output projection does not run, so it is not seen.
  seen.clear();
  session.Reset();
  ASSERT_TRUE(
      session.Forward(tokens, runtime::LogitsRows::kNone, &logits).ok());
  EXPECT_EQ(seen.size(), expected.size() - 1);
}

TEST_F(CalibrationTest, StatisticsOfOneLayer) {
  const std::filesystem::path ids = tmp_.path() / "ids.txt";
  {
    std::ofstream out(ids);
    for (int i = 0; i < 1100; ++i)
      out << (i * 7 + 3) % config_.vocab_size << " ";
  }
  CalibrationOptions options;
  options.file = ids;
  absl::StatusOr<CalibrationSet> set = LoadCalibration(dir_, options);
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_GE(set->tokens, MinCalibrationTokens(config_));
  absl::StatusOr<CalibrationData> data =
      CollectStatistics(dir_, *set, 1, /*with_hessian=*/true, 2);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->For(0, kDownProj), nullptr);   // another layer
  EXPECT_EQ(data->For(1, kInputNorm), nullptr);  // not a Linear
  const quant::Calibration* down = data->For(1, kDownProj);
  ASSERT_NE(down, nullptr);
  const int64_t n = config_.ffn_size;
  ASSERT_EQ(down->importance.size(), static_cast<size_t>(n));
  ASSERT_EQ(down->hessian.size(), static_cast<size_t>(n * n));
  for (int64_t c = 0; c < n; ++c) {
    EXPECT_GT(down->importance[c], 0.0f);
    EXPECT_NEAR(down->hessian[c * n + c], down->importance[c],
                1e-5 * down->importance[c]);
  }
  // q, k and v share one input, hence one set of statistics.
  EXPECT_EQ(data->For(1, kQProj), data->For(1, kVProj));
  EXPECT_NE(data->For(1, kQProj), data->For(1, kOProj));
}

}  // namespace
}  // namespace llmpack::quantize
