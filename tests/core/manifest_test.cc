#include "llmpack/manifest.h"

#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "llmpack/checksum.h"
#include "llmpack/file_util.h"
#include "support/test_paths.h"

namespace llmpack {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

ModelConfig SmallConfig() {
  ModelConfig c;
  c.family = "llama";
  c.architecture = "LlamaForCausalLM";
  c.hidden_size = 8;
  c.num_layers = 1;
  c.num_heads = 2;
  c.num_kv_heads = 1;
  c.head_dim = 4;
  c.ffn_size = 16;
  c.vocab_size = 10;
  c.rope.type = "llama3";
  c.rope.factor = 8;
  c.rope.original_max_positions = 256;
  c.bos_id = 1;
  c.eos_ids = {2, 3};
  c.chat_template = "{{ x }}";
  return c;
}

TEST(ManifestTest, JsonRoundTripKeepsEverything) {
  Manifest m;
  m.tool_version = "9.9";
  m.source = {"/src",
              "huggingface-safetensors",
              "LlamaForCausalLM",
              "bf16",
              0x1234,
              {"config.json"}};
  m.config = SmallConfig();
  m.weights_dtype = "bf16";
  m.files = {{"lm.bin", "lm", 10, 0xabcdef}};
  m.extensions["quantization"] = {{"scheme", "q4"}};
  auto back = ManifestFromJson(ManifestToJson(m), "test");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(ManifestToJson(*back), ManifestToJson(m));
  EXPECT_EQ(back->config.rope.factor, 8);
  EXPECT_EQ(back->config.eos_ids, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(back->files[0].checksum, 0xabcdefu);
}

TEST(ManifestTest, RejectsUnsafeFileNamesAndOtherMajors) {
  Manifest m;
  m.config = SmallConfig();
  m.files = {{"../etc/passwd", "lm", 1, 0}};
  auto j = ManifestToJson(m);
  EXPECT_THAT(std::string(ManifestFromJson(j, "m.json").status().message()),
              HasSubstr("plain name"));
  m.files.clear();
  j = ManifestToJson(m);
  j["format_version"] = "2.0";
  EXPECT_THAT(std::string(ManifestFromJson(j, "m.json").status().message()),
              HasSubstr("not supported"));
}

TEST(ManifestTest, ConfigValidationNamesTheField) {
  ModelConfig c = SmallConfig();
  c.num_kv_heads = 3;
  EXPECT_THAT(std::string(ValidateModelConfig(c).message()),
              HasSubstr("num_kv_heads"));
  c = SmallConfig();
  c.rope.type = "yarn";
  EXPECT_THAT(std::string(ValidateModelConfig(c).message()), HasSubstr("yarn"));
}

TEST(ManifestTest, VerifyPackageFilesDetectsSizeAndChecksum) {
  testing::ScopedTempDir tmp;
  ASSERT_TRUE(WriteStringToFile(tmp.path() / "a.bin", "hello").ok());
  Manifest m;
  m.config = SmallConfig();
  m.files = {{"a.bin", "block", 5, Checksum64("hello", 5)}};
  EXPECT_TRUE(VerifyPackageFiles(tmp.path(), m, true).ok());
  ASSERT_TRUE(WriteStringToFile(tmp.path() / "a.bin", "hellO").ok());
  EXPECT_TRUE(VerifyPackageFiles(tmp.path(), m, false).ok());
  EXPECT_THAT(std::string(VerifyPackageFiles(tmp.path(), m, true).message()),
              HasSubstr("checksum"));
  ASSERT_TRUE(WriteStringToFile(tmp.path() / "a.bin", "hi").ok());
  EXPECT_THAT(std::string(VerifyPackageFiles(tmp.path(), m, false).message()),
              HasSubstr("size is 2 bytes"));
  fs::remove(tmp.path() / "a.bin");
  EXPECT_THAT(std::string(VerifyPackageFiles(tmp.path(), m, false).message()),
              HasSubstr("missing"));
}

}  // namespace
}  // namespace llmpack
