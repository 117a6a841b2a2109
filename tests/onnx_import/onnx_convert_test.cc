// The ONNX fixtures convert, with and without config.json beside them, into
// packages whose every tensor equals the package converted from the
// Hugging Face folder they were exported from.
#include "onnx_import/onnx_convert.h"

#include <map>

#include "convert/hf_convert.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "llmpack/manifest.h"
#include "onnx_import/onnx_test_util.h"
#include "support/test_paths.h"

namespace llmpack::onnx_import {
namespace {
namespace fs = std::filesystem;
using ::llmpack::testing::OnnxFixture;
using ::llmpack::testing::ScopedTempDir;

class OnnxConvertTest : public ::testing::TestWithParam<bool> {
 protected:
  // The Hugging Face package of a fixture folder, converted once per test.
  Manifest ConvertHf(const fs::path& hf_dir, const fs::path& out,
                     std::optional<DType> dtype) {
    convert::WritePackageOptions options;
    options.output_dir = out;
    options.output_dtype = dtype;
    absl::StatusOr<Manifest> m = convert::ConvertHuggingFace(hf_dir, options);
    EXPECT_TRUE(m.ok()) << m.status();
    return m.ok() ? *m : Manifest{};
  }
};

void ExpectSameConfig(const ModelConfig& got, const ModelConfig& want) {
  EXPECT_EQ(got.family, want.family);
  EXPECT_EQ(got.architecture, want.architecture);
  EXPECT_EQ(got.hidden_size, want.hidden_size);
  EXPECT_EQ(got.num_layers, want.num_layers);
  EXPECT_EQ(got.num_heads, want.num_heads);
  EXPECT_EQ(got.num_kv_heads, want.num_kv_heads);
  EXPECT_EQ(got.head_dim, want.head_dim);
  EXPECT_EQ(got.ffn_size, want.ffn_size);
  EXPECT_EQ(got.vocab_size, want.vocab_size);
  EXPECT_EQ(got.norm_eps, want.norm_eps);
  EXPECT_EQ(got.rope.type, want.rope.type);
  EXPECT_EQ(got.rope.theta, want.rope.theta);
  if (want.rope.type == "llama3") {
    EXPECT_EQ(got.rope.factor, want.rope.factor);
    // Only the ratios of these three are determined by the frequencies; the
    // fixtures use Llama 3's canonical low = 1, high = 4.
    EXPECT_EQ(got.rope.low_freq_factor, want.rope.low_freq_factor);
    EXPECT_EQ(got.rope.high_freq_factor, want.rope.high_freq_factor);
    EXPECT_EQ(got.rope.original_max_positions,
              want.rope.original_max_positions);
  }
  EXPECT_EQ(got.tie_word_embeddings, want.tie_word_embeddings);
  EXPECT_EQ(got.qkv_bias, want.qkv_bias);
  EXPECT_EQ(got.qk_norm, want.qk_norm);
}

TEST_P(OnnxConvertTest, FixturesMatchHuggingFacePackages) {
  LLMPACK_REQUIRE_FIXTURES();
  const bool with_config = GetParam();
  ScopedTempDir tmp;
  std::map<fs::path, Manifest> hf_packages;
  for (const OnnxFixture& fx : ::llmpack::testing::OnnxFixtures()) {
    SCOPED_TRACE(fx.label);
    const fs::path hf_pkg = tmp.path() / ("hf_" + fx.label);
    const Manifest hf = ConvertHf(fx.hf_dir, hf_pkg, std::nullopt);
    const DType original = *ParseDType(hf.weights_dtype);

    const fs::path model = ::llmpack::testing::StageFixture(
        fx, tmp.path() / ("in_" + fx.label), with_config);
    // In the checkpoint's own dtype every tensor must be bit-identical
    // (the ONNX f32 weights are exact upcasts).
    convert::WritePackageOptions options;
    options.output_dir = tmp.path() / ("onnx_" + fx.label);
    options.output_dtype = original;
    absl::StatusOr<Manifest> got = ConvertOnnx(model, options);
    ASSERT_TRUE(got.ok()) << got.status();
    ::llmpack::testing::ExpectSamePackageTensors(options.output_dir, hf_pkg,
                                                 /*upcast_b=*/false);
    EXPECT_EQ(got->source.format, "onnx");
    EXPECT_EQ(got->source.dtype, "f32");
    ExpectSameConfig(got->config, hf.config);
    if (with_config) {
      EXPECT_TRUE(got->config.inferred_fields.empty());
      EXPECT_EQ(got->config.eos_ids, hf.config.eos_ids);
      EXPECT_EQ(got->config.bos_id, hf.config.bos_id);
      EXPECT_EQ(got->config.max_positions, hf.config.max_positions);
    } else {
      EXPECT_FALSE(got->config.inferred_fields.empty());
    }

    // Default: keep the ONNX f32 weights; equal to the HF package upcast.
    options.output_dir = tmp.path() / ("onnx_f32_" + fx.label);
    options.output_dtype.reset();
    got = ConvertOnnx(model, options);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->weights_dtype, "f32");
    ::llmpack::testing::ExpectSamePackageTensors(options.output_dir, hf_pkg,
                                                 /*upcast_b=*/true);
  }
}

INSTANTIATE_TEST_SUITE_P(WithAndWithoutConfig, OnnxConvertTest,
                         ::testing::Bool(), [](const auto& info) {
                           return info.param ? "WithConfigJson"
                                             : "WithoutConfigJson";
                         });

TEST(OnnxConvert, RecordsEverySourceFileInTheManifest) {
  LLMPACK_REQUIRE_FIXTURES();
  ScopedTempDir tmp;
  const OnnxFixture fx = ::llmpack::testing::OnnxFixtures()[1];  // external
  const fs::path model =
      ::llmpack::testing::StageFixture(fx, tmp.path() / "in", true);
  convert::WritePackageOptions options;
  options.output_dir = tmp.path() / "pkg";
  absl::StatusOr<Manifest> got = ConvertOnnx(model, options);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->source.files,
            (std::vector<std::string>{"model_ext.onnx", "model_ext.onnx.data",
                                      "config.json"}));
  absl::StatusOr<uint64_t> hash =
      convert::HashSourceFiles(tmp.path() / "in", got->source.files);
  ASSERT_TRUE(hash.ok());
  EXPECT_EQ(got->source.content_hash, *hash);
  absl::StatusOr<Manifest> reread = ReadManifest(options.output_dir);
  ASSERT_TRUE(reread.ok()) << reread.status();
  EXPECT_TRUE(VerifyPackageFiles(options.output_dir, *reread, true).ok());
}

TEST(OnnxConvert, RefusesToOverwriteTheModelFolder) {
  LLMPACK_REQUIRE_FIXTURES();
  ScopedTempDir tmp;
  const OnnxFixture fx = ::llmpack::testing::OnnxFixtures()[0];
  const fs::path model =
      ::llmpack::testing::StageFixture(fx, tmp.path() / "in", false);
  convert::WritePackageOptions options;
  options.output_dir = tmp.path() / "in";
  options.force = true;
  absl::StatusOr<Manifest> got = ConvertOnnx(model, options);
  ASSERT_FALSE(got.ok());
  EXPECT_THAT(std::string(got.status().message()),
              ::testing::HasSubstr("model's folder"));
  EXPECT_TRUE(fs::exists(model));
}

TEST(OnnxConvert, RefusesToReplaceASourceFile) {
  LLMPACK_REQUIRE_FIXTURES();
  ScopedTempDir tmp;
  const OnnxFixture fx = ::llmpack::testing::OnnxFixtures()[1];  // external
  const fs::path model =
      ::llmpack::testing::StageFixture(fx, tmp.path() / "in", false);
  for (const fs::path& target :
       {model, tmp.path() / "in" / "model_ext.onnx.data"}) {
    convert::WritePackageOptions options;
    options.output_dir = target;
    options.force = true;
    absl::StatusOr<Manifest> got = ConvertOnnx(model, options);
    ASSERT_FALSE(got.ok()) << target;
    EXPECT_THAT(std::string(got.status().message()),
                ::testing::HasSubstr("would replace the source file"));
    EXPECT_TRUE(fs::is_regular_file(target));
  }
}

}  // namespace
}  // namespace llmpack::onnx_import
