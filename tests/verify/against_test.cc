// llmverify --against: a package against itself, against a perturbed copy of
// itself (f16/bf16 rounding of the same weights), the gates, and the CLI.
#include "verify/against.h"

#include <cmath>

#include "convert/hf_convert.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "llmpack/file_util.h"
#include "nlohmann/json.hpp"
#include "runtime/test_package.h"
#include "support/test_paths.h"
#include "support/tool_run.h"

namespace llmpack::verify {
namespace {

namespace fs = std::filesystem;
using ::llmpack::testing::ScopedTempDir;
using ::llmpack::testing::TestdataDir;
using ::testing::HasSubstr;

// Rounding every weight of trained-llama from its bf16 source to f16 only
// touches the few weights below f16's normal range (2^-14), so the drift is
// tiny but not zero (mean KL 1.7e-13 over the 64 windows); a quantized
// package is expected to be orders of magnitude above this bound.
constexpr double kF16RoundingMaxMeanKl = 1e-9;
// Rounding random f32 weights of the synthetic package to bf16 (8 mantissa
// bits) moves the logits by ~1e-3 relative: a KL of order 1e-6..1e-4.
constexpr double kBf16RoundingMaxMeanKl = 1e-3;

// trained-llama converted (in-process) to `dtype`, once per program.
fs::path TrainedLlama(const std::string& dtype) {
  static ScopedTempDir dir;
  const fs::path out = dir.path() / dtype;
  if (fs::exists(out / "manifest.json")) return out;
  convert::WritePackageOptions options;
  options.output_dir = out;
  options.output_dtype = *ParseDType(dtype);
  auto manifest =
      convert::ConvertHuggingFace(TestdataDir() / "trained-llama" / "hf", options);
  EXPECT_TRUE(manifest.ok()) << manifest.status();
  return out;
}

AgainstOptions TrainedLlamaInputs(const fs::path& base, const fs::path& other,
                                  int64_t windows) {
  AgainstOptions o;
  o.base = base;
  o.other = other;
  o.model.threads = 2;
  o.eval = TestdataDir() / "trained-llama" / "eval_windows.json";
  o.eval_max_windows = windows;
  o.reference = TestdataDir() / "trained-llama" / "reference.json";
  return o;
}

TEST(AgainstTest, PackageAgainstItselfIsIdentical) {
  const fs::path pkg = TrainedLlama("f32");
  auto r = CompareAgainst(TrainedLlamaInputs(pkg, pkg, 3));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->eval_windows, 3);
  EXPECT_GT(r->reference_prompts, 0);
  // 3 windows of 257 tokens score 256 positions each, plus every prompt
  // position.
  EXPECT_GT(r->positions, 3 * 256);
  EXPECT_EQ(r->predicted_tokens, 3 * 256);
  EXPECT_EQ(r->kl.mean, 0.0);
  EXPECT_EQ(r->kl.max, 0.0);
  EXPECT_EQ(r->top1_agreement, 1.0);
  EXPECT_EQ(r->perplexity_ratio, 1.0);
  EXPECT_GT(r->base_perplexity, 1.0);
  EXPECT_EQ(r->correct_prob_change.rms, 0.0);
  EXPECT_EQ(r->base_size.bytes_on_disk, r->other_size.bytes_on_disk);
  EXPECT_GT(r->base_size.bytes_on_disk, 0u);
  EXPECT_FALSE(r->other_size.bits_per_weight.has_value());
  EXPECT_TRUE(FailedGates(*r, {0.0, 1.0, 1.0}).empty());
}

TEST(AgainstTest, F16ConversionDriftsSlightly) {
  auto r = CompareAgainst(
      TrainedLlamaInputs(TrainedLlama("f32"), TrainedLlama("f16"), 4));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(r->kl.mean, 0.0);
  EXPECT_LT(r->kl.mean, kF16RoundingMaxMeanKl);
  EXPECT_GE(r->kl.max, r->kl.p99);
  EXPECT_GE(r->kl.p99, 0.0);
  EXPECT_GT(r->top1_agreement, 0.99);
  EXPECT_NEAR(r->perplexity_ratio, 1.0, 1e-3);
  // f16 halves the size of the f32 weights.
  EXPECT_LT(r->other_size.bytes_on_disk, r->base_size.bytes_on_disk * 0.6);
}

// Synthetic packages of the same random weights in f32 and bf16.
class AgainstSyntheticTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const ModelConfig config = ::llmpack::testing::TinyConfig();
    ASSERT_TRUE(
        ::llmpack::testing::WriteTestPackage(base_, config, DType::kF32, 7)
            .ok());
    ASSERT_TRUE(
        ::llmpack::testing::WriteTestPackage(other_, config, DType::kBF16, 7)
            .ok());
    ASSERT_TRUE(
        WriteStringToFile(ids_, "1 5 9 33 2 40 41 17 88 3 12 60 61 62 5 9")
            .ok());
  }
  AgainstOptions Options() const {
    AgainstOptions o;
    o.base = base_;
    o.other = other_;
    o.model.threads = 1;
    o.eval = ids_;
    o.eval_window = 6;
    return o;
  }

  ScopedTempDir tmp_;
  fs::path base_ = tmp_.path() / "f32";
  fs::path other_ = tmp_.path() / "bf16";
  fs::path ids_ = tmp_.path() / "ids.txt";
};

TEST_F(AgainstSyntheticTest, Bf16RoundingGivesSmallPositiveKl) {
  auto r = CompareAgainst(Options());
  ASSERT_TRUE(r.ok()) << r.status();
  // 16 ids in windows of 6 (+ BOS): 6 + 6 + 4 scored positions.
  EXPECT_EQ(r->eval_windows, 3);
  EXPECT_EQ(r->predicted_tokens, 16);
  EXPECT_GT(r->kl.mean, 0.0);
  EXPECT_LT(r->kl.mean, kBf16RoundingMaxMeanKl);
  EXPECT_LE(r->kl.p99, r->kl.max);
  EXPECT_LE(r->correct_prob_change.p1, r->correct_prob_change.p99);
  EXPECT_GE(r->correct_prob_change.rms, std::abs(r->correct_prob_change.mean));
  EXPECT_NE(r->perplexity_ratio, 1.0);
}

TEST_F(AgainstSyntheticTest, GatesPassAndFail) {
  auto r = CompareAgainst(Options());
  ASSERT_TRUE(r.ok()) << r.status();
  AgainstGates loose{kBf16RoundingMaxMeanKl, 0.5, 1.01};
  EXPECT_TRUE(FailedGates(*r, loose).empty());
  AgainstGates tight{r->kl.mean / 2, std::nullopt, std::nullopt};
  EXPECT_THAT(FailedGates(*r, tight), ::testing::ElementsAre("max_kl"));
  // The perplexity gate passes at the measured ratio and fails just below.
  EXPECT_TRUE(FailedGates(*r, {std::nullopt, std::nullopt, r->perplexity_ratio})
                  .empty());
  EXPECT_THAT(FailedGates(*r, {std::nullopt, std::nullopt,
                               r->perplexity_ratio * (1 - 1e-9)}),
              ::testing::ElementsAre("max_ppl_ratio"));
  AgainstGates top1{std::nullopt, r->top1_agreement + 1e-9, std::nullopt};
  EXPECT_THAT(FailedGates(*r, top1), ::testing::ElementsAre("min_top1"));
  // No eval windows: a perplexity gate cannot pass.
  AgainstResult no_eval = *r;
  no_eval.predicted_tokens = 0;
  EXPECT_THAT(FailedGates(no_eval, {std::nullopt, std::nullopt, 100.0}),
              ::testing::ElementsAre("max_ppl_ratio"));
  const nlohmann::json j = AgainstToJson(*r, tight);
  EXPECT_EQ(j["passed"], false);
  EXPECT_EQ(j["kl"]["mean"].get<double>(), r->kl.mean);
  EXPECT_TRUE(j["other_size"]["bits_per_weight"].is_null());
}

TEST_F(AgainstSyntheticTest, RefusesMismatchedVocabularyAndMissingInputs) {
  ModelConfig config = ::llmpack::testing::TinyConfig();
  config.vocab_size = 98;
  const fs::path wide = tmp_.path() / "wide";
  ASSERT_TRUE(
      ::llmpack::testing::WriteTestPackage(wide, config, DType::kF32, 7).ok());
  AgainstOptions o = Options();
  o.other = wide;
  EXPECT_THAT(std::string(CompareAgainst(o).status().message()),
              HasSubstr("vocabulary 98) against"));
  o = Options();
  o.eval.reset();
  EXPECT_THAT(std::string(CompareAgainst(o).status().message()),
              HasSubstr("needs inputs"));
}

TEST_F(AgainstSyntheticTest, CliExitCodesAndJson) {
  const std::string common = base_.string() + " --against " + other_.string() +
                             " --eval " + ids_.string() +
                             " --eval-window 6 --threads 1";
  const fs::path json = tmp_.path() / "report.json";
  auto pass = ::llmpack::testing::RunTool(
      "llmverify",
      common + " --max-kl 1e-3 --min-top1 0.5 --max-ppl-ratio 1.1 --json " +
          json.string(),
      true);
  EXPECT_EQ(pass.exit_code, 0) << pass.output;
  EXPECT_THAT(pass.output, HasSubstr("KL(base||other) mean"));
  const nlohmann::json j = nlohmann::json::parse(*ReadFileToString(json));
  EXPECT_EQ(j["against"]["eval_windows"], 3);
  EXPECT_EQ(j["passed"], true);
  EXPECT_GT(j["against"]["kl"]["mean"].get<double>(), 0.0);
  auto fail = ::llmpack::testing::RunTool("llmverify",
                                          common + " --max-kl 1e-12", true);
  EXPECT_EQ(fail.exit_code, 1) << fail.output;
  EXPECT_THAT(fail.output, HasSubstr("FAILED gate --max-kl"));
  auto misuse = ::llmpack::testing::RunTool(
      "llmverify", base_.string() + " --max-kl 1", true);
  EXPECT_EQ(misuse.exit_code, 2) << misuse.output;
}

}  // namespace
}  // namespace llmpack::verify
