// The llmconvert binary: --help documents every option, --version prints the
// version, errors map to exit status 1 and usage errors to 2.
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "llmpack/version.h"
#include "support/test_paths.h"
#include "support/tool_run.h"

namespace llmpack::convert {
namespace {

using ::testing::HasSubstr;

using RunResult = testing::ToolRun;

// llmconvert with stdout and stderr captured together.
RunResult RunLlmconvert(const std::string& args) {
  return testing::RunTool("llmconvert", args, /*merge_stderr=*/true);
}

TEST(LlmconvertCliTest, HelpDocumentsEveryOption) {
  const RunResult r = RunLlmconvert("--help");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* opt : {"--output", "--dtype", "--force", "--quiet", "--json",
                          "--version", "Exit status"}) {
    EXPECT_THAT(r.output, HasSubstr(opt));
  }
}

TEST(LlmconvertCliTest, VersionPrintsVersion) {
  const RunResult r = RunLlmconvert("--version");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr(kToolVersion));
}

TEST(LlmconvertCliTest, ErrorsAndUsageHaveDistinctStatus) {
  EXPECT_EQ(RunLlmconvert("").exit_code, 2);
  EXPECT_EQ(RunLlmconvert("/x --dtype int3 -o /tmp/y").exit_code, 2);
  const RunResult missing =
      RunLlmconvert("/nonexistent/model -o /tmp/llmpack_never");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.output,
              HasSubstr("llmconvert: error: /nonexistent/model"));
}

TEST(LlmconvertCliTest, JsonSummary) {
  LLMPACK_REQUIRE_FIXTURES();
  testing::ScopedTempDir tmp;
  const RunResult r =
      RunLlmconvert((testing::FixturesDir() / "tiny-qwen3" / "hf").string() +
                    " -o " + (tmp.path() / "p").string() + " --json");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("\"architecture\": \"Qwen3ForCausalLM\""));
  EXPECT_THAT(r.output, HasSubstr("\"mb_per_second\""));
}

TEST(LlmconvertCliTest, TokenizerOnlyFromCheckpointFolder) {
  LLMPACK_REQUIRE_FIXTURES();
  testing::ScopedTempDir tmp;
  const std::string out = (tmp.path() / "tokenizer.txt").string();
  const RunResult r = RunLlmconvert(
      "--tokenizer-only " +
      (testing::FixturesDir() / "tiny-llama" / "hf").string() + " -o " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::ifstream in(out);
  std::string first_line;
  std::getline(in, first_line);
  EXPECT_EQ(first_line.rfind("llmpack-tokenizer", 0), 0u) << first_line;
}

// A tiktoken ranks file made here: the 256 single bytes, then "ab"; the
// special token given on the command line must continue the ids.
TEST(LlmconvertCliTest, TokenizerOnlyFromTiktokenRanks) {
  testing::ScopedTempDir tmp;
  const std::filesystem::path ranks = tmp.path() / "ranks.tiktoken";
  {
    static const char kB64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    auto b64 = [&](const std::string& s) {
      std::string out;
      for (size_t i = 0; i < s.size(); i += 3) {
        uint32_t v = static_cast<uint8_t>(s[i]) << 16;
        if (i + 1 < s.size()) v |= static_cast<uint8_t>(s[i + 1]) << 8;
        if (i + 2 < s.size()) v |= static_cast<uint8_t>(s[i + 2]);
        out += kB64[(v >> 18) & 63];
        out += kB64[(v >> 12) & 63];
        out += i + 1 < s.size() ? kB64[(v >> 6) & 63] : '=';
        out += i + 2 < s.size() ? kB64[v & 63] : '=';
      }
      return out;
    };
    std::ofstream f(ranks);
    for (int b = 0; b < 256; ++b) {
      f << b64(std::string(1, static_cast<char>(b))) << " " << b << "\n";
    }
    f << b64("ab") << " 256\n";
  }
  const std::string out = (tmp.path() / "tokenizer.txt").string();
  const RunResult r =
      RunLlmconvert("--tiktoken-pattern llama3 --special '<|end|>=257' " +
                    ranks.string() + " -o " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string verify =
      (testing::BinaryDir() / "tools" / "llmverify").string();
  if (!std::filesystem::exists(verify)) GTEST_SKIP() << "llmverify not built";
  EXPECT_THAT(testing::RunTool("llmverify", out + " --tokenize 'abc<|end|>'",
                               /*merge_stderr=*/false)
                  .output,
              HasSubstr("[256, 99, 257]"));
  EXPECT_EQ(RunLlmconvert("--tiktoken-pattern llama3 --special 'nope' " +
                          ranks.string() + " -o " + out)
                .exit_code,
            1);
}

}  // namespace
}  // namespace llmpack::convert
