// Every case of ../shared/fixtures/tokenizers/*_cases.json, encoded and
// decoded through a tokenizer.txt converted from the fixture's source file.
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "support/test_paths.h"
#include "tokenizer/fixture_tokenizers.h"
#include "tokenizer/tokenizer.h"

namespace llmpack::tokenizer {
namespace {

using ::llmpack::testing::FixturesDir;
using ::llmpack::testing::ScopedTempDir;
using json = nlohmann::json;

json ReadJsonFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  return json::parse(in);
}

std::unique_ptr<Tokenizer> ConvertAndLoad(const std::string& source_name,
                                          const ScopedTempDir& tmp) {
  auto t = LoadFixtureTokenizer(source_name, tmp.path());
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *std::move(t) : nullptr;
}

// Checks every case; failures name the case index and text.
void CheckCases(const std::string& name, const std::string& source) {
  ScopedTempDir tmp;
  std::unique_ptr<Tokenizer> tok = ConvertAndLoad(source, tmp);
  ASSERT_NE(tok, nullptr);
  const json cases = ReadJsonFile(FixturesDir() / "tokenizers" /
                                  (name + "_cases.json"))["cases"];
  ASSERT_FALSE(cases.empty());
  int failures = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const json& c = cases[i];
    const std::string text = c["text"].get<std::string>();
    const auto ids = c["ids"].get<std::vector<int32_t>>();
    const std::string label = name + " case " + std::to_string(i) +
                              " text=" + json(text).dump().substr(0, 80);
    const std::vector<int32_t> got = *tok->Encode(text, /*add_special=*/false);
    EXPECT_EQ(got, ids) << label;
    failures += got != ids;
    if (c.contains("ids_with_special")) {
      const auto with = c["ids_with_special"].get<std::vector<int32_t>>();
      EXPECT_EQ(*tok->Encode(text, /*add_special=*/true), with) << label;
    }
    if (c.contains("decoded")) {
      auto decoded = tok->Decode(ids);
      ASSERT_TRUE(decoded.ok()) << decoded.status();
      EXPECT_EQ(*decoded, c["decoded"].get<std::string>()) << label;
      // Streaming gives the same text and never splits a character.
      StreamingDecoder stream(*tok);
      std::string streamed;
      for (int32_t id : ids) streamed += stream.Push(id);
      streamed += stream.Flush();
      EXPECT_EQ(streamed, *decoded) << label;
    }
  }
  EXPECT_EQ(failures, 0) << name << ": " << failures << " of " << cases.size()
                         << " cases encode differently";
}

TEST(TokenizerFixtures, Llama3) {
  LLMPACK_REQUIRE_FIXTURES();
  CheckCases("llama3", "llama3_tokenizer.json");
}
TEST(TokenizerFixtures, Qwen3) {
  LLMPACK_REQUIRE_FIXTURES();
  CheckCases("qwen3", "qwen3_tokenizer.json");
}
TEST(TokenizerFixtures, MistralSentencePieceJson) {
  LLMPACK_REQUIRE_FIXTURES();
  CheckCases("mistral_spm", "mistral_spm_tokenizer.json");
}
TEST(TokenizerFixtures, Llama2SentencePieceModel) {
  LLMPACK_REQUIRE_FIXTURES();
  CheckCases("llama2_spm", "llama2_tokenizer.model");
}
TEST(TokenizerFixtures, Bpe4k) {
  LLMPACK_REQUIRE_FIXTURES();
  CheckCases("bpe4k", "bpe4k_tokenizer.json");
}

}  // namespace
}  // namespace llmpack::tokenizer
