// llmverify --tokenize / --detokenize end to end (skipped, loudly, when the
// tool has not been built).

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "llmpack/file_util.h"
#include "support/test_paths.h"
#include "support/tool_run.h"
#include "tokenizer/fixture_tokenizers.h"

namespace llmpack::tokenizer {
namespace {

using ::llmpack::testing::BinaryDir;
using ::llmpack::testing::ScopedTempDir;

using ::llmpack::testing::ToolRun;

// llmverify with stdout captured (stderr goes to the test's stderr).
ToolRun Llmverify(const std::string& args) {
  return ::llmpack::testing::RunTool("llmverify", args,
                                     /*merge_stderr=*/false);
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
  EXPECT_EQ(r.output, "[0, 44, 546, 83, 1029]\n");
  r = Llmverify(tmp.path().string() + " --tokenize @" +
                (tmp.path() / "in.txt").string());
  EXPECT_EQ(r.output, "[44, 546, 83, 1029]\n");
  r = Llmverify(txt.string() + " --detokenize '[44, 546, 83, 1029]'");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.output, "Hello world\n");
  r = Llmverify(txt.string() + " --detokenize '44 999999' 2>/dev/null");
  EXPECT_EQ(r.exit_code, 2);
}

}  // namespace
}  // namespace llmpack::tokenizer
