// The synthetic checkpoint generator: its folders convert like real
// checkpoints for every family, and the same seed gives the same bytes.
#include "convert/synthetic_checkpoint.h"

#include "commands/convert_command.h"
#include "gtest/gtest.h"
#include "llmpack/file_util.h"
#include "support/test_paths.h"

namespace llmpack {
namespace {

namespace fs = std::filesystem;

convert::SyntheticOptions TinyOptions(const fs::path& out,
                                      const std::string& family) {
  convert::SyntheticOptions o;
  o.output = out;
  o.shape = *convert::SyntheticPreset("tiny");
  o.shape.family = family;
  return o;
}

class SyntheticFamilyTest : public ::testing::TestWithParam<std::string> {};

TEST_P(SyntheticFamilyTest, ConvertsWithTheRequestedShape) {
  testing::ScopedTempDir tmp;
  convert::SyntheticOptions o = TinyOptions(tmp.path() / "hf", GetParam());
  o.shape.tie_word_embeddings = GetParam() != "mistral";
  auto written = convert::WriteSyntheticCheckpoint(o);
  ASSERT_TRUE(written.ok()) << written.status();

  commands::ConvertRequest req;
  req.input = o.output;
  req.output = tmp.path() / "pkg";
  req.progress = false;
  auto summary = commands::RunConvert(req);
  ASSERT_TRUE(summary.ok()) << summary.status();
  const ModelConfig& c = summary->manifest.config;
  EXPECT_EQ(c.family, GetParam());
  EXPECT_EQ(c.hidden_size, o.shape.hidden_size);
  EXPECT_EQ(c.num_layers, o.shape.num_layers);
  EXPECT_EQ(c.num_kv_heads, o.shape.num_kv_heads);
  EXPECT_EQ(c.head_dim, o.shape.head_dim);
  EXPECT_EQ(c.ffn_size, o.shape.ffn_size);
  EXPECT_EQ(c.vocab_size, o.shape.vocab_size);
  EXPECT_EQ(c.tie_word_embeddings, o.shape.tie_word_embeddings);
  EXPECT_EQ(c.qkv_bias, GetParam() == "qwen2");
  EXPECT_EQ(c.qk_norm, GetParam() == "qwen3");
  EXPECT_EQ(c.rope.type, "llama3");
}

INSTANTIATE_TEST_SUITE_P(Families, SyntheticFamilyTest,
                         ::testing::Values("llama", "mistral", "qwen2",
                                           "qwen3"));

TEST(SyntheticCheckpointTest, SameSeedSameBytesOtherSeedOtherBytes) {
  testing::ScopedTempDir tmp;
  std::string files[3];
  for (int i = 0; i < 3; ++i) {
    convert::SyntheticOptions o =
        TinyOptions(tmp.path() / std::to_string(i), "llama");
    o.seed = i == 2 ? 7 : 1;
    ASSERT_TRUE(convert::WriteSyntheticCheckpoint(o).ok());
    files[i] = *ReadFileToString(o.output / "model.safetensors");
  }
  EXPECT_EQ(files[0], files[1]);
  EXPECT_NE(files[0], files[2]);
  EXPECT_EQ(files[0].size(), files[2].size());
}

TEST(SyntheticCheckpointTest, BadShapeIsRefusedAndLeavesNothing) {
  testing::ScopedTempDir tmp;
  convert::SyntheticOptions o = TinyOptions(tmp.path() / "hf", "llama");
  o.shape.num_kv_heads = 3;  // does not divide 4 heads
  auto written = convert::WriteSyntheticCheckpoint(o);
  ASSERT_FALSE(written.ok());
  EXPECT_NE(written.status().message().find("num_kv_heads"),
            std::string::npos)
      << written.status();
  EXPECT_TRUE(fs::is_empty(tmp.path()));
  EXPECT_FALSE(convert::SyntheticPreset("gpt-5").ok());
}

}  // namespace
}  // namespace llmpack
