// Text in and out through the package tokenizer: a text prompt reproduces
// the fixture's ids and greedy continuation, and a text eval file scores the
// same as the equivalent token-id file.
#include <fstream>

#include "commands/verify_command.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "llmpack/checksum.h"
#include "llmpack/file_util.h"
#include "llmpack/manifest.h"
#include "llmpack/package_layout.h"
#include "nlohmann/json.hpp"
#include "runtime/fixture_packages.h"
#include "support/test_paths.h"
#include "tokenizer/convert_tokenizer.h"
#include "verify/tokenizer_codec.h"

namespace llmpack::verify {
namespace {

using ::llmpack::testing::FixturePackages;
using ::llmpack::testing::FixturesDir;
using ::llmpack::testing::ScopedTempDir;

// A copy of the converted trained-llama package that carries tokenizer.txt
// (added here if the converter did not add one).
std::filesystem::path PackageWithTokenizer(const ScopedTempDir& dir) {
  const auto package = dir.path() / "trained-llama";
  std::filesystem::copy(FixturePackages::Get("trained-llama"), package);
  if (std::filesystem::exists(package / kTokenizerFile)) return package;
  auto manifest = ReadManifest(package);
  EXPECT_TRUE(manifest.ok());
  ModelConfig config = manifest->config;
  EXPECT_TRUE(
      tokenizer::ConvertTokenizerDir(FixturesDir() / "trained-llama" / "hf",
                                     package / kTokenizerFile, &config)
          .ok());
  auto sum = ChecksumFile(package / kTokenizerFile);
  EXPECT_TRUE(sum.ok());
  manifest->files.push_back(
      {kTokenizerFile, "tokenizer",
       std::filesystem::file_size(package / kTokenizerFile), *sum});
  EXPECT_TRUE(WriteManifest(package, *manifest).ok());
  return package;
}

TEST(TextTest, TextPromptReproducesReferenceIdsAndContinuation) {
  LLMPACK_REQUIRE_FIXTURES();
  ScopedTempDir dir;
  const auto package = PackageWithTokenizer(dir);
  auto codec = TokenizerTextCodec::Load(package);
  ASSERT_TRUE(codec.ok()) << codec.status();
  ASSERT_NE(*codec, nullptr);
  auto text =
      ReadFileToString(FixturesDir() / "trained-llama" / "reference.json");
  ASSERT_TRUE(text.ok());
  const nlohmann::json ref = nlohmann::json::parse(*text);

  commands::VerifyRequest o;
  o.package = package;
  o.prompt_text = ref["prompts"][0].get<std::string>();
  o.max_new_tokens = 14;
  o.stop_at_eos = false;
  o.codec = codec->get();
  std::ostringstream out;
  o.out = &out;
  o.quiet = true;
  auto outcome = commands::RunVerify(o);
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  const auto& gen = outcome->report["generation"];
  EXPECT_EQ(gen["prompt_ids"], ref["refs"][0]["input_ids"]);
  std::vector<int32_t> want = ref["refs"][0]["greedy_continuation"];
  want.resize(14);
  EXPECT_EQ(gen["generated_ids"].get<std::vector<int32_t>>(), want);
  const std::string generated = gen["text"];
  EXPECT_FALSE(generated.empty());
  // Printed as produced: the prompt, then the streamed continuation.
  EXPECT_EQ(out.str(), o.prompt_text.value() + generated + "\n");
}

TEST(TextTest, TextEvalMatchesTokenIdEval) {
  LLMPACK_REQUIRE_FIXTURES();
  ScopedTempDir dir;
  const auto package = PackageWithTokenizer(dir);
  auto codec = TokenizerTextCodec::Load(package);
  ASSERT_TRUE(codec.ok() && *codec != nullptr);
  const std::string text =
      "ROMEO:\nBut soft, what light through yonder window breaks?\n"
      "It is the east, and Juliet is the sun.\n";
  auto ids = (*codec)->Encode(text, /*add_special=*/false);
  ASSERT_TRUE(ids.ok());
  {
    std::ofstream(dir.path() / "eval.txt") << text;
    std::ofstream f(dir.path() / "eval.ids");
    for (int32_t id : *ids) f << id << "\n";
  }
  auto run = [&](const char* file) {
    commands::VerifyRequest o;
    o.package = package;
    o.eval = dir.path() / file;
    o.eval_window = 16;
    o.codec = codec->get();
    auto outcome = commands::RunVerify(o);
    EXPECT_TRUE(outcome.ok()) << outcome.status();
    return outcome.ok() ? outcome->report["eval"] : nlohmann::json();
  };
  const nlohmann::json from_text = run("eval.txt");
  const nlohmann::json from_ids = run("eval.ids");
  EXPECT_EQ(from_text["kind"], "text");
  EXPECT_EQ(from_ids["kind"], "token-ids");
  // Windows of 16 tokens, each after BOS: every token is predicted once.
  EXPECT_EQ(from_text["predicted_tokens"], int64_t(ids->size()));
  EXPECT_EQ(from_text["windows"], int64_t((ids->size() + 15) / 16));
  EXPECT_EQ(from_text["perplexity"], from_ids["perplexity"]);
}

}  // namespace
}  // namespace llmpack::verify
