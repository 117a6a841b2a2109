// Acceptance on the shared fixtures: converted packages reproduce every
// Hugging Face reference case (NMSE <= 1e-8, top-1 100%, identical greedy
// continuations) and the recorded perplexities; saved bundles gate other
// packages and the diagnosis names the broken block.
#include <fstream>
#include <map>

#include "commands/verify_command.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "llmpack/package_layout.h"
#include "llmpack/tensor_file.h"
#include "runtime/fixture_packages.h"
#include "support/fixture_models.h"
#include "support/test_paths.h"

namespace llmpack::verify {
namespace {

using ::llmpack::testing::FixturePackages;
using ::llmpack::testing::FixturesDir;
using ::llmpack::testing::ScopedTempDir;

class ParityTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ParityTest, ReproducesEveryReferenceCase) {
  LLMPACK_REQUIRE_FIXTURES();
  const std::string model = GetParam();
  commands::VerifyRequest o;
  o.package = FixturePackages::Get(model);
  o.reference = FixturesDir() / model / "reference.json";
  auto outcome = commands::RunVerify(o);
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  const auto& cases = outcome->report["reference"]["cases"];
  ASSERT_GE(cases.size(), 3u);
  for (const auto& c : cases) {
    SCOPED_TRACE(model + " " + c["name"].get<std::string>());
    EXPECT_LE(c["nmse"].get<double>(), 1e-8);
    EXPECT_EQ(c["top1_agreement"].get<double>(), 1.0);
    EXPECT_TRUE(c["greedy_match"].get<bool>());
    EXPECT_EQ(c["greedy_matched_tokens"], c["greedy_reference_tokens"]);
    EXPECT_GE(c["greedy_reference_tokens"].get<int>(), 14);
  }
  EXPECT_TRUE(outcome->passed);
  const auto& m = outcome->report["metrics"];
  EXPECT_LE(m["max_resident_blocks"].get<int>(), 2);
  EXPECT_GT(m["decode_tokens"].get<int>(), 0);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ParityTest,
                         ::llmpack::testing::FixtureModels(),
                         ::llmpack::testing::FixtureModelTestName);

double EvalPerplexity(const std::string& model, const std::string& file) {
  commands::VerifyRequest o;
  o.package = FixturePackages::Get(model);
  o.eval = FixturesDir() / model / file;
  auto outcome = commands::RunVerify(o);
  EXPECT_TRUE(outcome.ok()) << outcome.status();
  if (!outcome.ok()) return 0;
  EXPECT_TRUE(outcome->passed);
  return outcome->report["eval"]["perplexity"].get<double>();
}

TEST(PerplexityTest, Stories260KEvalTokens) {
  LLMPACK_REQUIRE_FIXTURES();
  const double ppl = EvalPerplexity("stories260K", "eval_tokens.json");
  EXPECT_NEAR(ppl, 16.649, 16.649 * 1e-4);
}

TEST(PerplexityTest, TrainedLlamaEvalWindows) {
  LLMPACK_REQUIRE_FIXTURES();
  const double ppl = EvalPerplexity("trained-llama", "eval_windows.json");
  EXPECT_NEAR(ppl, 64.8274, 64.8274 * 1e-4);
}

// Scales the bytes of one tensor so its values change but stay finite.
void DamageTensor(const std::filesystem::path& file, const char* name) {
  auto reader = TensorFileReader::Open(file);
  ASSERT_TRUE(reader.ok());
  const TensorInfo* t = reader->Find(name);
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  for (uint64_t i = 0; i < t->size_bytes; i += 2 * 7) {
    // bf16: the high byte holds sign and exponent; flipping the sign bit
    // of every 7th value perturbs the layer without overflow.
    f.seekg(static_cast<std::streamoff>(t->offset + i + 1));
    const int hi = f.get();
    f.seekp(static_cast<std::streamoff>(t->offset + i + 1));
    f.put(static_cast<char>(hi ^ 0x80));
  }
}

TEST(SavedReferenceTest, GatesAnotherPackageAndDiagnosesTheBrokenBlock) {
  LLMPACK_REQUIRE_FIXTURES();
  const auto trusted = FixturePackages::Get("tiny-llama");
  ScopedTempDir dir;
  const auto bundle = dir.path() / "tiny.llmref";
  {
    commands::VerifyRequest o;
    o.package = trusted;
    o.reference = FixturesDir() / "tiny-llama" / "reference.json";
    o.save_reference = bundle;
    o.save_top_k = 16;
    auto saved = commands::RunVerify(o);
    ASSERT_TRUE(saved.ok()) << saved.status();
    EXPECT_EQ(saved->report["saved_reference"]["cases"], 3);
  }
  // The trusted package passes its own bundle.
  commands::VerifyRequest check;
  check.package = trusted;
  check.reference = bundle;
  auto again = commands::RunVerify(check);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->passed);
  EXPECT_EQ(again->report["reference"]["format"], "llmpack-reference");

  // A copy with block 1 damaged fails, and the diagnosis points at block 1.
  const auto broken = dir.path() / "broken";
  std::filesystem::copy(trusted, broken);
  DamageTensor(broken / BlockFileName(1), kDownProj);
  check.package = broken;
  check.model.verify_checksums = false;  // the damage is the point
  check.diagnose_against = trusted;
  auto failed = commands::RunVerify(check);
  ASSERT_TRUE(failed.ok()) << failed.status();
  EXPECT_FALSE(failed->passed);
  EXPECT_EQ(failed->report["diagnosis"]["first_divergent_layer"], 1);
  EXPECT_EQ(failed->report["diagnosis"]["blocks"][0]["nmse"], 0.0);
}

}  // namespace
}  // namespace llmpack::verify
