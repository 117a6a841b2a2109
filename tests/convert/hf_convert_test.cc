// Round trips of the fixture checkpoints: every packaged tensor must be
// bit-identical to its source (after the requested dtype conversion) and the
// manifest config must match what transformers reported.
#include "convert/hf_convert.h"

#include <cstring>
#include <fstream>

#include "commands/convert_command.h"
#include "convert/safetensors_testing.h"
#include "gtest/gtest.h"
#include "llmpack/file_util.h"
#include "llmpack/package_layout.h"
#include "llmpack/tensor_file.h"
#include "nlohmann/json.hpp"
#include "support/fixture_models.h"
#include "support/test_paths.h"

namespace llmpack::convert {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json ReadJson(const fs::path& p) { return json::parse(*ReadFileToString(p)); }

// Upcasts raw source bytes to f32 independently of the library's converters.
std::string UpcastToF32(const testing::RawTensor& t) {
  if (t.dtype == "F32") return t.bytes;
  std::string out(t.bytes.size() * 2, '\0');
  for (size_t i = 0; i < t.bytes.size() / 2; ++i) {
    uint16_t h;
    std::memcpy(&h, t.bytes.data() + 2 * i, 2);
    float f;
    if (t.dtype == "BF16") {
      const uint32_t bits = static_cast<uint32_t>(h) << 16;
      std::memcpy(&f, &bits, 4);
    } else {
      f = F16ToF32(h);  // exhaustively checked in core_test
    }
    std::memcpy(out.data() + 4 * i, &f, 4);
  }
  return out;
}

class HfRoundTripTest : public ::testing::TestWithParam<std::string> {
 protected:
  fs::path Hf() const { return testing::FixturesDir() / GetParam() / "hf"; }

  Manifest Convert(const fs::path& out, const std::string& dtype) {
    commands::ConvertRequest req;
    req.input = Hf();
    req.output = out;
    req.dtype = dtype;
    req.progress = false;
    auto summary = commands::RunConvert(req);
    EXPECT_TRUE(summary.ok()) << summary.status();
    return summary.ok() ? summary->manifest : Manifest{};
  }

  // Compares every package tensor with the source, converted by `expect`.
  void CheckTensors(
      const fs::path& pkg, const Manifest& m,
      const std::function<std::string(const testing::RawTensor&)>& expect) {
    const auto source = testing::ReadCheckpointTensors(Hf());
    int compared = 0;
    for (const ExpectedFile& file : ExpectedPackageFiles(m.config)) {
      auto reader = TensorFileReader::Open(pkg / file.file_name, file.kind);
      ASSERT_TRUE(reader.ok()) << reader.status();
      ASSERT_EQ(reader->tensors().size(), file.tensors.size());
      for (const ExpectedTensor& t : file.tensors) {
        std::string src_name = HuggingFaceTensorName(file, t);
        if (m.config.tie_word_embeddings && t.name == kLmHead) {
          ASSERT_EQ(source.count(kLmHead), 0u) << "tied fixture has lm_head";
          src_name = "model.embed_tokens.weight";
        }
        ASSERT_TRUE(source.count(src_name)) << src_name;
        const TensorInfo* info = reader->Find(t.name);
        ASSERT_NE(info, nullptr) << t.name;
        EXPECT_EQ(info->shape, source.at(src_name).shape) << t.name;
        std::string bytes(info->size_bytes, '\0');
        ASSERT_TRUE(reader
                        ->ReadTensor(*info,
                                     {reinterpret_cast<uint8_t*>(bytes.data()),
                                      bytes.size()},
                                     /*verify_checksum=*/true)
                        .ok());
        ASSERT_TRUE(bytes == expect(source.at(src_name)))
            << file.file_name << ": " << t.name << " differs from " << src_name;
        ++compared;
      }
    }
    EXPECT_GT(compared, 0);
  }
};

TEST_P(HfRoundTripTest, TensorsAreBitIdentical) {
  LLMPACK_REQUIRE_FIXTURES();
  testing::ScopedTempDir tmp;
  const Manifest m = Convert(tmp.path() / "pkg", "keep");
  EXPECT_TRUE(VerifyPackageFiles(tmp.path() / "pkg", m, true).ok());
  CheckTensors(tmp.path() / "pkg", m,
               [](const testing::RawTensor& t) { return t.bytes; });
}

TEST_P(HfRoundTripTest, F32OutputIsExactUpcast) {
  LLMPACK_REQUIRE_FIXTURES();
  testing::ScopedTempDir tmp;
  const Manifest m = Convert(tmp.path() / "pkg", "f32");
  EXPECT_EQ(m.weights_dtype, "f32");
  CheckTensors(tmp.path() / "pkg", m, UpcastToF32);
}

TEST_P(HfRoundTripTest, ManifestConfigMatchesTransformers) {
  LLMPACK_REQUIRE_FIXTURES();
  testing::ScopedTempDir tmp;
  const Manifest m = Convert(tmp.path() / "pkg", "keep");
  const json ref = ReadJson(testing::FixturesDir() / GetParam() /
                            "reference.json")["config"];
  const ModelConfig& c = m.config;
  EXPECT_EQ(c.architecture, ref["architectures"][0]);
  EXPECT_EQ(c.hidden_size, ref["hidden_size"]);
  EXPECT_EQ(c.num_layers, ref["num_hidden_layers"]);
  EXPECT_EQ(c.num_heads, ref["num_attention_heads"]);
  EXPECT_EQ(c.num_kv_heads, ref["num_key_value_heads"]);
  EXPECT_EQ(c.head_dim, ref["head_dim"]);
  EXPECT_EQ(c.ffn_size, ref["intermediate_size"]);
  EXPECT_EQ(c.vocab_size, ref["vocab_size"]);
  EXPECT_EQ(c.norm_eps, ref["rms_norm_eps"]);
  EXPECT_EQ(c.tie_word_embeddings, ref["tie_word_embeddings"]);
  EXPECT_EQ(c.max_positions, ref["max_position_embeddings"]);
  EXPECT_EQ(c.bos_id.value_or(-1), ref["bos_token_id"]);
  EXPECT_EQ(c.eos_ids.at(0), ref["eos_token_id"]);
  const json& rope = ref["rope_parameters"];
  EXPECT_EQ(c.rope.type, rope["rope_type"]);
  EXPECT_EQ(c.rope.theta, rope["rope_theta"]);
  if (c.rope.type == "llama3") {
    EXPECT_EQ(c.rope.factor, rope["factor"]);
    EXPECT_EQ(c.rope.low_freq_factor, rope["low_freq_factor"]);
    EXPECT_EQ(c.rope.high_freq_factor, rope["high_freq_factor"]);
    EXPECT_EQ(c.rope.original_max_positions,
              rope["original_max_position_embeddings"]);
  }
  EXPECT_EQ(c.qk_norm, ref["model_type"] == "qwen3");
  // Every file checksum in the manifest verifies.
  EXPECT_TRUE(VerifyPackageFiles(tmp.path() / "pkg", m, true).ok());
}

INSTANTIATE_TEST_SUITE_P(Fixtures, HfRoundTripTest,
                         ::llmpack::testing::FixtureModels(),
                         ::llmpack::testing::FixtureModelTestName);

// transformers 4 writes rope_theta/rope_scaling at top level and torch_dtype;
// the converter must read both styles to the same config.
TEST(HfConfigStyleTest, Transformers4ConfigGivesSameManifestConfig) {
  LLMPACK_REQUIRE_FIXTURES();
  testing::ScopedTempDir tmp;
  const fs::path hf = testing::FixturesDir() / "tiny-llama" / "hf";
  const fs::path old_style = tmp.path() / "t4";
  testing::CopyCheckpoint(hf, old_style);
  json cfg = ReadJson(hf / "config.json");
  json params = cfg["rope_parameters"];
  cfg.erase("rope_parameters");
  cfg["rope_theta"] = params["rope_theta"];
  params.erase("rope_theta");
  cfg["rope_scaling"] = params;
  cfg["torch_dtype"] = cfg["dtype"];
  cfg.erase("dtype");
  ASSERT_TRUE(WriteStringToFile(old_style / "config.json", cfg.dump()).ok());

  auto a = commands::RunConvert({hf, tmp.path() / "a", "keep", false, false});
  auto b =
      commands::RunConvert({old_style, tmp.path() / "b", "keep", false, false});
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(ModelConfigToJson(a->manifest.config),
            ModelConfigToJson(b->manifest.config));
  EXPECT_EQ(b->manifest.config.rope.type, "llama3");
}

}  // namespace
}  // namespace llmpack::convert
