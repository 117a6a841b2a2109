// Each kind of bad input gets a one-line error naming the problem, and no
// package (or staging directory) is left behind.
#include <fstream>

#include "commands/convert_command.h"
#include "convert/safetensors_testing.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "llmpack/file_util.h"
#include "nlohmann/json.hpp"
#include "support/test_paths.h"

namespace llmpack::convert {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using ::testing::HasSubstr;

class BadInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::FixturesAvailable()) return;
    testing::CopyCheckpoint(testing::FixturesDir() / "tiny-llama" / "hf",
                            src());
  }
  fs::path src() const { return tmp_.path() / "src"; }
  fs::path out_parent() const { return tmp_.path() / "out"; }
  fs::path out() const { return out_parent() / "pkg"; }

  // Runs the converter and returns its error; asserts nothing was left.
  std::string ConvertError(const fs::path& input) {
    auto result = commands::RunConvert({input, out(), "keep", false, false});
    EXPECT_FALSE(result.ok()) << "conversion unexpectedly succeeded";
    EXPECT_FALSE(fs::exists(out())) << "a package was left behind";
    if (fs::exists(out_parent())) {
      EXPECT_TRUE(fs::is_empty(out_parent())) << "staging files left behind";
    }
    const std::string msg(result.status().message());
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "error is not one line";
    return msg;
  }

  void EditConfig(const std::function<void(json&)>& edit) {
    json cfg = json::parse(*ReadFileToString(src() / "config.json"));
    edit(cfg);
    ASSERT_TRUE(WriteStringToFile(src() / "config.json", cfg.dump()).ok());
  }

  void EditTensors(
      const std::function<void(std::map<std::string, testing::RawTensor>&)>&
          edit) {
    auto tensors = testing::ReadCheckpointTensors(src());
    edit(tensors);
    testing::WriteSafetensors(src() / "model.safetensors", tensors);
  }

  void WriteRaw(const std::string& bytes) {
    std::ofstream f(src() / "model.safetensors",
                    std::ios::binary | std::ios::trunc);
    f << bytes;
  }

  testing::ScopedTempDir tmp_;
};

TEST_F(BadInputTest, MissingConfig) {
  LLMPACK_REQUIRE_FIXTURES();
  fs::remove(src() / "config.json");
  EXPECT_THAT(ConvertError(src()), HasSubstr("config.json: missing"));
}

TEST_F(BadInputTest, MissingWeights) {
  LLMPACK_REQUIRE_FIXTURES();
  fs::remove(src() / "model.safetensors");
  EXPECT_THAT(ConvertError(src()), HasSubstr("no weights found"));
}

TEST_F(BadInputTest, UnsupportedArchitectureListsSupported) {
  LLMPACK_REQUIRE_FIXTURES();
  EditConfig([](json& c) { c["architectures"] = {"GPT2LMHeadModel"}; });
  const std::string msg = ConvertError(src());
  EXPECT_THAT(msg, HasSubstr("GPT2LMHeadModel"));
  EXPECT_THAT(msg, HasSubstr("LlamaForCausalLM, MistralForCausalLM, "
                             "Qwen2ForCausalLM, Qwen3ForCausalLM"));
}

TEST_F(BadInputTest, UnsupportedRopeType) {
  LLMPACK_REQUIRE_FIXTURES();
  EditConfig([](json& c) { c["rope_parameters"]["rope_type"] = "yarn"; });
  EXPECT_THAT(ConvertError(src()), HasSubstr("RoPE type 'yarn'"));
}

TEST_F(BadInputTest, TensorMissing) {
  LLMPACK_REQUIRE_FIXTURES();
  EditTensors([](auto& t) { t.erase("model.layers.1.mlp.up_proj.weight"); });
  EXPECT_THAT(ConvertError(src()),
              HasSubstr("tensor model.layers.1.mlp.up_proj.weight is missing"));
}

TEST_F(BadInputTest, TensorWrongShape) {
  LLMPACK_REQUIRE_FIXTURES();
  EditTensors([](auto& t) {
    auto& w = t["model.layers.0.self_attn.k_proj.weight"];
    w.shape = {16, 128};  // same bytes, wrong shape: [32, 64] expected
  });
  const std::string msg = ConvertError(src());
  EXPECT_THAT(msg, HasSubstr("model.layers.0.self_attn.k_proj.weight"));
  EXPECT_THAT(msg, HasSubstr("[16, 128], expected [32, 64]"));
}

TEST_F(BadInputTest, TruncatedHeader) {
  LLMPACK_REQUIRE_FIXTURES();
  const std::string full = *ReadFileToString(src() / "model.safetensors");
  WriteRaw(full.substr(0, 100));
  EXPECT_THAT(ConvertError(src()), HasSubstr("header length"));
  WriteRaw(full.substr(0, 5));
  EXPECT_THAT(ConvertError(src()), HasSubstr("too small"));
}

TEST_F(BadInputTest, MalformedHeader) {
  LLMPACK_REQUIRE_FIXTURES();
  const std::string header = "{\"a\": [1, 2";
  const uint64_t n = header.size();
  WriteRaw(std::string(reinterpret_cast<const char*>(&n), 8) + header);
  EXPECT_THAT(ConvertError(src()), HasSubstr("malformed safetensors header"));
}

TEST_F(BadInputTest, OffsetsPastEndOfFile) {
  LLMPACK_REQUIRE_FIXTURES();
  const std::string full = *ReadFileToString(src() / "model.safetensors");
  WriteRaw(full.substr(0, full.size() - 1000));  // cut the last tensor
  const std::string msg = ConvertError(src());
  EXPECT_THAT(msg, HasSubstr("run past the end"));
  EXPECT_THAT(msg, HasSubstr("model.safetensors: tensor "));
}

TEST_F(BadInputTest, UnknownDType) {
  LLMPACK_REQUIRE_FIXTURES();
  EditTensors([](auto& t) {
    auto& w = t["model.norm.weight"];
    w.dtype = "I16";
  });
  const std::string msg = ConvertError(src());
  EXPECT_THAT(msg, HasSubstr("unsupported dtype 'I16'"));
  EXPECT_THAT(msg, HasSubstr("model.norm.weight"));
}

TEST_F(BadInputTest, ShardNamedInIndexIsAbsent) {
  LLMPACK_REQUIRE_FIXTURES();
  testing::ScopedTempDir sharded;
  testing::CopyCheckpoint(testing::FixturesDir() / "trained-llama" / "hf",
                          sharded.path());
  fs::remove(sharded.path() / "model-00002-of-00002.safetensors");
  const std::string msg = ConvertError(sharded.path());
  EXPECT_THAT(msg, HasSubstr("model-00002-of-00002.safetensors"));
  EXPECT_THAT(msg, HasSubstr("absent"));
}

TEST_F(BadInputTest, MalformedTokenizerJson) {
  LLMPACK_REQUIRE_FIXTURES();
  ASSERT_TRUE(
      WriteStringToFile(src() / "tokenizer.json", "{\"model\": [").ok());
  EXPECT_THAT(ConvertError(src()), HasSubstr("tokenizer.json"));
}

TEST_F(BadInputTest, RefusesToWriteIntoInput) {
  LLMPACK_REQUIRE_FIXTURES();
  auto result =
      commands::RunConvert({src(), src() / "pkg", "keep", false, false});
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("overlaps"));
  EXPECT_FALSE(fs::exists(src() / "pkg"));
}

TEST_F(BadInputTest, ExistingPackageIsKeptWithoutForce) {
  LLMPACK_REQUIRE_FIXTURES();
  ASSERT_TRUE(commands::RunConvert({src(), out(), "keep", true, false}).ok());
  auto again = commands::RunConvert({src(), out(), "keep", false, false});
  ASSERT_FALSE(again.ok());
  EXPECT_THAT(std::string(again.status().message()), HasSubstr("--force"));
  EXPECT_TRUE(fs::exists(out() / "manifest.json"));
  // A failing forced conversion leaves the old package untouched.
  fs::remove(src() / "model.safetensors");
  auto failed = commands::RunConvert({src(), out(), "keep", true, false});
  ASSERT_FALSE(failed.ok());
  EXPECT_TRUE(fs::exists(out() / "manifest.json"));
}

}  // namespace
}  // namespace llmpack::convert
