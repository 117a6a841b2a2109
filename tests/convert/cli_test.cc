// The llmconvert binary: --help documents every option, --version prints the
// version, errors map to exit status 1 and usage errors to 2.
#include <cstdio>
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

}  // namespace
}  // namespace llmpack
