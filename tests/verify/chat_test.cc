// llmverify --chat on the bundled trained-llama, whose package carries a
// ChatML template: the rendered prompt's ids, the stop at a stop id, and the
// error for a package without a template.
#include <algorithm>

#include "commands/verify_command.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "llmpack/manifest.h"
#include "llmpack/package_layout.h"
#include "runtime/fixture_packages.h"
#include "support/test_paths.h"
#include "tokenizer/tokenizer.h"

namespace llmpack::verify {
namespace {

using ::llmpack::testing::FixturePackages;
using ::llmpack::testing::ScopedTempDir;
using ::testing::Contains;
using ::testing::HasSubstr;

// A writable copy of the bundled package.
std::filesystem::path CopyOfBundled(const ScopedTempDir& dir) {
  const auto package = dir.path() / "trained-llama";
  std::filesystem::copy(FixturePackages::Bundled("trained-llama"), package);
  return package;
}

absl::StatusOr<commands::VerifyOutcome> Chat(
    const std::filesystem::path& package, int64_t max_new_tokens,
    bool stop_at_eos) {
  commands::VerifyRequest request;
  request.package = package;
  request.system_message = "Be brief.";
  request.chat_message = "Hello there";
  request.max_new_tokens = max_new_tokens;
  request.stop_at_eos = stop_at_eos;
  return commands::RunVerify(request);
}

TEST(ChatTest, RendersTheTemplateAndEncodesItsSpecialTokens) {
  const auto package = FixturePackages::Bundled("trained-llama");
  auto outcome = Chat(package, 4, true);
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  const nlohmann::json& chat = outcome->report["generation"]["chat"];
  // ChatML as the bundled chat_template.jinja writes it.
  EXPECT_EQ(chat["rendered_prompt"],
            "<|im_start|>system\nBe brief.<|im_end|>\n"
            "<|im_start|>user\nHello there<|im_end|>\n"
            "<|im_start|>assistant\n");

  // The ids built piece by piece: each special token is one id, the text
  // between them is encoded on its own, and no BOS is added (the template
  // writes every special token itself).
  auto tok = tokenizer::Tokenizer::Load(package / kTokenizerFile);
  ASSERT_TRUE(tok.ok()) << tok.status();
  const std::optional<int32_t> start = (*tok)->TokenToId("<|im_start|>");
  const std::optional<int32_t> end = (*tok)->TokenToId("<|im_end|>");
  ASSERT_TRUE(start.has_value() && end.has_value());
  std::vector<int32_t> want;
  auto text = [&](const char* s) {
    const std::vector<int32_t> ids = *(*tok)->Encode(s, false);
    want.insert(want.end(), ids.begin(), ids.end());
  };
  want.push_back(*start);
  text("system\nBe brief.");
  want.push_back(*end);
  text("\n");
  want.push_back(*start);
  text("user\nHello there");
  want.push_back(*end);
  text("\n");
  want.push_back(*start);
  text("assistant\n");
  EXPECT_EQ(outcome->report["generation"]["prompt_ids"], want);
}

TEST(ChatTest, GenerationStopsAtAStopId) {
  ScopedTempDir dir;
  const auto package = CopyOfBundled(dir);
  auto manifest = ReadManifest(package);
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  // The template's end-of-turn token ends generation.
  auto tok = tokenizer::Tokenizer::Load(package / kTokenizerFile);
  ASSERT_TRUE(tok.ok()) << tok.status();
  const std::optional<int32_t> end = (*tok)->TokenToId("<|im_end|>");
  ASSERT_TRUE(end.has_value());
  EXPECT_THAT(manifest->config.eos_ids, Contains(*end));

  // The model was not trained on chats, so make the token it produces at
  // some step k a stop id: generation must end right after it.
  constexpr int64_t kMaxTokens = 8;
  auto free_run = Chat(package, kMaxTokens, /*stop_at_eos=*/false);
  ASSERT_TRUE(free_run.ok()) << free_run.status();
  const std::vector<int32_t> free_ids =
      free_run->report["generation"]["generated_ids"];
  ASSERT_EQ(free_ids.size(), kMaxTokens);
  // The last step whose token appears there for the first time, before any
  // of the package's own stop ids.
  const std::vector<int64_t> stop = manifest->config.eos_ids;
  size_t k = 0;
  for (size_t i = 0; i < free_ids.size(); ++i) {
    if (std::find(free_ids.begin(), free_ids.begin() + i, free_ids[i]) ==
        free_ids.begin() + i) {
      k = i;
    }
    if (std::find(stop.begin(), stop.end(), free_ids[i]) != stop.end()) break;
  }
  manifest->config.eos_ids.push_back(free_ids[k]);
  ASSERT_TRUE(WriteManifest(package, *manifest).ok());

  auto stopped = Chat(package, kMaxTokens, /*stop_at_eos=*/true);
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  const nlohmann::json& gen = stopped->report["generation"];
  EXPECT_EQ(gen["stop_reason"], "eos");
  EXPECT_EQ(gen["generated_ids"].get<std::vector<int32_t>>(),
            std::vector<int32_t>(free_ids.begin(), free_ids.begin() + k + 1));
}

TEST(ChatTest, PackageWithoutTemplateNamesTheFix) {
  ScopedTempDir dir;
  const auto package = CopyOfBundled(dir);
  auto manifest = ReadManifest(package);
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  manifest->config.chat_template.clear();
  ASSERT_TRUE(WriteManifest(package, *manifest).ok());
  auto outcome = Chat(package, 4, true);
  EXPECT_EQ(outcome.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(outcome.status().message(), HasSubstr("no chat template"));
  EXPECT_THAT(outcome.status().message(), HasSubstr("chat_template"));
  EXPECT_THAT(outcome.status().message(), HasSubstr("--prompt"));
}

}  // namespace
}  // namespace llmpack::verify
