// llmquant as a user runs it: options documented, usage errors (2) and
// quantization errors (1) distinct, --json report on stdout.
#include <filesystem>
#include <string>

#include "gtest/gtest.h"
#include "llmpack/dtype.h"
#include "nlohmann/json.hpp"
#include "runtime/test_package.h"
#include "support/test_paths.h"
#include "support/tool_run.h"

namespace llmpack {
namespace {
namespace fs = std::filesystem;

testing::ToolRun Quant(const std::string& args) {
  return testing::RunTool("llmquant", args, /*merge_stderr=*/true);
}

TEST(LlmquantCliTest, HelpDocumentsEveryOption) {
  const testing::ToolRun r = Quant("--help");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* option :
       {"--int4", "--int8", "--group", "--sym", "--asym", "--scale-dtype",
        "--lm", "--embed", "--method", "--calib", "--threads", "--json",
        "--force", "--quiet"}) {
    EXPECT_NE(r.output.find(option), std::string::npos) << option;
  }
}

class LlmquantPackageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    input_ = (tmp_.path() / "f32").string();
    output_ = (tmp_.path() / "q").string();
    ASSERT_TRUE(
        testing::WriteTestPackage(input_, testing::TinyConfig(), DType::kF32, 3)
            .ok());
  }
  testing::ScopedTempDir tmp_;
  std::string input_, output_;
};

TEST_F(LlmquantPackageTest, UsageAndQuantizationErrorsHaveDistinctStatus) {
  EXPECT_EQ(Quant(input_ + " -o " + output_).exit_code, 2);  // no --int4/8
  EXPECT_EQ(Quant(input_ + " -o " + output_ + " --int4 --group abc").exit_code,
            2);
  EXPECT_EQ(Quant(input_ + " -o " + output_ + " --int4 --int8").exit_code, 2);
  const testing::ToolRun bad =
      Quant(input_ + " -o " + output_ + " --int4 --group 0");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.output.find("group size 0"), std::string::npos) << bad.output;
  EXPECT_FALSE(fs::exists(output_));
}

TEST_F(LlmquantPackageTest, JsonReportOnStdout) {
  const testing::ToolRun r = testing::RunTool(
      "llmquant", input_ + " -o " + output_ + " --int8 --json -",
      /*merge_stderr=*/false);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json j = nlohmann::json::parse(r.output, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.output;
  ASSERT_EQ(j["tensors"].size(), 7u * 3 + 1);
  EXPECT_EQ(j["tensors"][0]["dtype"], "q8");
  EXPECT_EQ(j["tensors"][0]["zero_point"], false);  // int8 default: --sym
  EXPECT_GT(j["bits_per_weight"].get<double>(), 8.0);
  EXPECT_TRUE(fs::exists(fs::path(output_) / "manifest.json"));
}

}  // namespace
}  // namespace llmpack
