// llmverify --tokenize / --detokenize end to end (skipped, loudly, when the
// tool has not been built).
#include <sys/wait.h>

#include <cstdio>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "llmpack/file_util.h"
#include "support/test_paths.h"
#include "tokenizer/fixture_tokenizers.h"

namespace llmpack::tok {
namespace {

using ::llmpack::testing::BinaryDir;
using ::llmpack::testing::ScopedTempDir;

struct ToolRun {
  int exit_code = -1;
  std::string out;  // stdout only
};

ToolRun Llmverify(const std::string& args) {
  ToolRun run;
  const std::string cmd =
      (BinaryDir() / "tools" / "llmverify").string() + " " + args;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return run;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) run.out.append(buf, n);
  const int status = pclose(p);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

TEST(LlmverifyTokenize, TokenizeAndDetokenize) {
  LLMPACK_REQUIRE_FIXTURES();
  if (!std::filesystem::exists(BinaryDir() / "tools" / "llmverify")) {
    GTEST_SKIP() << "SKIPPED LOUDLY: build the llmverify target first";
  }
  ScopedTempDir tmp;
  const auto txt = tmp.path() / "tokenizer.txt";
  ASSERT_TRUE(ConvertFixtureTokenizer(kBpe4k, tmp.path()).ok());
  ASSERT_TRUE(WriteStringToFile(tmp.path() / "in.txt", "Hello world").ok());
  // Ids from bpe4k_cases.json.
  ToolRun r =
      Llmverify(txt.string() + " --tokenize 'Hello world' --add-special");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "[0, 44, 546, 83, 1029]\n");
  r = Llmverify(tmp.path().string() + " --tokenize @" +
                (tmp.path() / "in.txt").string());
  EXPECT_EQ(r.out, "[44, 546, 83, 1029]\n");
  r = Llmverify(txt.string() + " --detokenize '[44, 546, 83, 1029]'");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "Hello world\n");
  r = Llmverify(txt.string() + " --detokenize '44 999999' 2>/dev/null");
  EXPECT_EQ(r.exit_code, 2);
}

}  // namespace
}  // namespace llmpack::tok
