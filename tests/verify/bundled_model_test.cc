// The bundled trained-llama (testdata/, with its Hugging Face reference
// logits, greedy continuations and held-out perplexity) converted and
// verified with the default gates. Needs nothing outside the checkout, so a
// build with LLMPACK_SHARED_DIR pointing nowhere still checks the forward
// pass against an independent truth.
#include <optional>

#include "commands/verify_command.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "llmpack/json_file.h"
#include "runtime/fixture_packages.h"
#include "support/test_paths.h"
#include "verify/report.h"

namespace llmpack::verify {
namespace {

using ::llmpack::testing::FixturePackages;
using ::llmpack::testing::TestdataDir;

std::filesystem::path ModelDir() { return TestdataDir() / "trained-llama"; }

// The fixture file as JSON (null, with a test failure, if unreadable).
nlohmann::json Fixture(const char* name) {
  auto json = ReadJsonFile(ModelDir() / name);
  EXPECT_TRUE(json.ok()) << json.status();
  return json.ok() ? *json : nlohmann::json();
}

// llmverify's library call on the converted package with the default gates
// and `check` (reference or eval) set to the fixture file.
absl::StatusOr<commands::VerifyOutcome> VerifyBundled(
    std::optional<std::filesystem::path> commands::VerifyRequest::*check,
    const char* fixture) {
  commands::VerifyRequest request;
  request.package = FixturePackages::Bundled("trained-llama");
  request.*check = ModelDir() / fixture;
  return commands::RunVerify(request);
}

TEST(BundledModelTest, ConvertedPackagePassesTheReferenceWithDefaultGates) {
  auto outcome =
      VerifyBundled(&commands::VerifyRequest::reference, "reference.json");
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  const nlohmann::json& reference = outcome->report["reference"];
  // Every case of the fixture was run, and each passed every gate.
  ASSERT_EQ(reference["cases"].size(),
            Fixture("reference.json")["refs"].size());
  for (const nlohmann::json& c : reference["cases"]) {
    EXPECT_EQ(c["passed"], true) << c.dump();
    EXPECT_EQ(c["greedy_match"], true) << c.dump();
    EXPECT_GT(c["greedy_reference_tokens"].get<int64_t>(), 0);
  }
  EXPECT_EQ(outcome->report["gates"], GatesJson(Gates{}));
  EXPECT_TRUE(outcome->passed);
}

TEST(BundledModelTest, PerplexityMatchesTheFixturesFp32Value) {
  auto outcome =
      VerifyBundled(&commands::VerifyRequest::eval, "eval_windows.json");
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  const nlohmann::json fixture = Fixture("eval_windows.json");
  const double expected = fixture["fp32_ppl"].get<double>();
  const nlohmann::json& eval = outcome->report["eval"];
  EXPECT_EQ(eval["windows"], fixture["windows"].size());
  EXPECT_EQ(eval["expected_perplexity"].get<double>(), expected);
  EXPECT_NEAR(eval["perplexity"].get<double>(), expected,
              expected * Gates{}.ppl_rel_tolerance);
  EXPECT_EQ(eval["passed"], true);
  EXPECT_TRUE(outcome->passed);
}

}  // namespace
}  // namespace llmpack::verify
