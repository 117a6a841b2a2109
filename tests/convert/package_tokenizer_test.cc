// The converter turns a checkpoint's tokenizer files into tokenizer.txt and
// carries the chat template and stop ids into the manifest.
#include "commands/convert_command.h"
#include "gtest/gtest.h"
#include "llmpack/file_util.h"
#include "llmpack/manifest.h"
#include "nlohmann/json.hpp"
#include "support/test_paths.h"
#include "tokenizer/tokenizer.h"

namespace llmpack::convert {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

TEST(PackageTokenizerTest, PackageTokenizerReproducesFixtureCases) {
  LLMPACK_REQUIRE_FIXTURES();
  testing::ScopedTempDir tmp;
  const fs::path pkg = tmp.path() / "pkg";
  auto summary =
      commands::RunConvert({testing::FixturesDir() / "tiny-llama" / "hf", pkg,
                            "keep", false, false});
  ASSERT_TRUE(summary.ok()) << summary.status();
  const ManifestFile* entry = summary->manifest.FindFile("tokenizer.txt");
  ASSERT_NE(entry, nullptr);
  EXPECT_EQ(entry->role, "tokenizer");
  EXPECT_TRUE(VerifyPackageFiles(pkg, summary->manifest, true).ok());
  EXPECT_EQ(summary->manifest.config.chat_template,
            *ReadFileToString(testing::FixturesDir() / "tiny-llama" / "hf" /
                              "chat_template.jinja"));
  EXPECT_FALSE(summary->manifest.config.eos_ids.empty());

  auto tok = tokenizer::Tokenizer::Load(pkg / "tokenizer.txt");
  ASSERT_TRUE(tok.ok()) << tok.status();
  const json cases = json::parse(*ReadFileToString(
      testing::FixturesDir() / "tokenizers" / "bpe4k_cases.json"))["cases"];
  ASSERT_GT(cases.size(), 10u);
  for (const json& c : cases) {
    const std::string text = c["text"];
    EXPECT_EQ(*(*tok)->Encode(text, false),
              c["ids"].get<std::vector<int32_t>>())
        << text;
    EXPECT_EQ(*(*tok)->Encode(text, true),
              c["ids_with_special"].get<std::vector<int32_t>>())
        << text;
  }
}

TEST(PackageTokenizerTest, CheckpointWithoutTokenizerHasNone) {
  LLMPACK_REQUIRE_FIXTURES();
  testing::ScopedTempDir tmp;
  auto summary =
      commands::RunConvert({testing::FixturesDir() / "stories260K" / "hf",
                            tmp.path() / "pkg", "keep", false, false});
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(summary->manifest.FindFile("tokenizer.txt"), nullptr);
  EXPECT_FALSE(fs::exists(tmp.path() / "pkg" / "tokenizer.txt"));
}

}  // namespace
}  // namespace llmpack::convert
