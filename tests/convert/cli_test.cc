// The llmconvert binary: --help documents every option, --version prints the
// version, errors map to exit status 1 and usage errors to 2.
#include <cstdio>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "llmpack/version.h"
#include "support/test_paths.h"

namespace llmpack {
namespace {

using ::testing::HasSubstr;

struct RunResult {
  int status;
  std::string output;
};

RunResult RunLlmconvert(const std::string& args) {
  const std::string cmd =
      (testing::BinaryDir() / "tools" / "llmconvert").string() + " " + args +
      " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  const int status = pclose(p);
  return {WEXITSTATUS(status), out};
}

TEST(LlmconvertCliTest, HelpDocumentsEveryOption) {
  const RunResult r = RunLlmconvert("--help");
  EXPECT_EQ(r.status, 0);
  for (const char* opt : {"--output", "--dtype", "--force", "--quiet", "--json",
                          "--version", "Exit status"}) {
    EXPECT_THAT(r.output, HasSubstr(opt));
  }
}

TEST(LlmconvertCliTest, VersionPrintsVersion) {
  const RunResult r = RunLlmconvert("--version");
  EXPECT_EQ(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr(kToolVersion));
}

TEST(LlmconvertCliTest, ErrorsAndUsageHaveDistinctStatus) {
  EXPECT_EQ(RunLlmconvert("").status, 2);
  EXPECT_EQ(RunLlmconvert("/x --dtype int3 -o /tmp/y").status, 2);
  const RunResult missing =
      RunLlmconvert("/nonexistent/model -o /tmp/llmpack_never");
  EXPECT_EQ(missing.status, 1);
  EXPECT_THAT(missing.output,
              HasSubstr("llmconvert: error: /nonexistent/model"));
}

TEST(LlmconvertCliTest, JsonSummary) {
  LLMPACK_REQUIRE_FIXTURES();
  testing::ScopedTempDir tmp;
  const RunResult r =
      RunLlmconvert((testing::FixturesDir() / "tiny-qwen3" / "hf").string() +
                    " -o " + (tmp.path() / "p").string() + " --json");
  EXPECT_EQ(r.status, 0) << r.output;
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
  ASSERT_EQ(r.status, 0) << r.output;
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
  ASSERT_EQ(r.status, 0) << r.output;
  const std::string verify =
      (testing::BinaryDir() / "tools" / "llmverify").string();
  if (!std::filesystem::exists(verify)) GTEST_SKIP() << "llmverify not built";
  FILE* p =
      popen((verify + " " + out + " --tokenize 'abc<|end|>'").c_str(), "r");
  char buf[256] = {};
  const size_t n = fread(buf, 1, sizeof(buf) - 1, p);
  pclose(p);
  EXPECT_THAT(std::string(buf, n), HasSubstr("[256, 99, 257]"));
  EXPECT_EQ(RunLlmconvert("--tiktoken-pattern llama3 --special 'nope' " +
                          ranks.string() + " -o " + out)
                .status,
            1);
}

}  // namespace
}  // namespace llmpack
