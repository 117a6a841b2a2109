// Forward-pass invariants on synthetic packages: stream == resident,
// thread count does not change results, prefill == token-by-token decode,
// scalar and optimized kernels agree; sampling.
#include "runtime/model.h"

#include <cmath>
#include <map>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/generate.h"
#include "runtime/test_package.h"
#include "support/test_paths.h"

namespace llmpack::runtime {
namespace {

using ::llmpack::testing::ScopedTempDir;
using ::llmpack::testing::TinyConfig;
using ::llmpack::testing::WriteTestPackage;
using ::testing::HasSubstr;

const std::vector<int32_t> kTokens = {1, 17, 42, 5, 96, 0, 33, 8, 8, 61};

std::vector<float> Logits(const std::filesystem::path& dir,
                          const ModelOptions& options, LogitsRows rows) {
  auto model = Model::Open(dir, options);
  EXPECT_TRUE(model.ok()) << model.status();
  if (!model.ok()) return {};
  Session session(**model, 64);
  std::vector<float> logits;
  EXPECT_TRUE(session.Forward(kTokens, rows, &logits).ok());
  return logits;
}

double Nmse(const std::vector<float>& a, const std::vector<float>& ref) {
  double mean = 0, var = 0, err = 0;
  for (float x : ref) mean += x;
  mean /= ref.size();
  for (size_t i = 0; i < ref.size(); ++i) {
    var += (ref[i] - mean) * (ref[i] - mean);
    err += (a[i] - ref[i]) * (a[i] - ref[i]);
  }
  return err / var;
}

struct Variant {
  const char* name;
  bool qkv_bias;
  bool qk_norm;
  const char* rope;
  DType dtype;
};

class ModelTest : public ::testing::TestWithParam<Variant> {
 protected:
  void SetUp() override {
    const Variant& v = GetParam();
    ModelConfig config = TinyConfig();
    config.qkv_bias = v.qkv_bias;
    config.qk_norm = v.qk_norm;
    config.head_dim = 12;  // not hidden / heads
    config.rope.type = v.rope;
    if (config.rope.type == "llama3") {
      config.rope.factor = 8;
      config.rope.original_max_positions = 16;
    }
    ASSERT_TRUE(WriteTestPackage(dir_.path(), config, v.dtype, 9).ok());
  }
  ScopedTempDir dir_;
};

TEST_P(ModelTest, StreamAndResidentAreBitIdentical) {
  ModelOptions options;
  const auto stream = Logits(dir_.path(), options, LogitsRows::kAll);
  options.mode = LoadMode::kResident;
  const auto resident = Logits(dir_.path(), options, LogitsRows::kAll);
  ASSERT_EQ(stream.size(), kTokens.size() * 97);
  EXPECT_EQ(stream, resident);
}

TEST_P(ModelTest, ThreadCountDoesNotChangeResults) {
  ModelOptions options;
  options.threads = 1;
  const auto one = Logits(dir_.path(), options, LogitsRows::kAll);
  options.threads = 3;
  EXPECT_EQ(one, Logits(dir_.path(), options, LogitsRows::kAll));
}

TEST_P(ModelTest, ScalarAndOptimizedKernelsAgree) {
  ModelOptions options;
  const auto fast = Logits(dir_.path(), options, LogitsRows::kAll);
  options.kernels = KernelChoice::kScalar;
  const auto scalar = Logits(dir_.path(), options, LogitsRows::kAll);
  EXPECT_LT(Nmse(fast, scalar), 1e-10);
}

// A prompt longer than one MLP chunk (128 tokens) runs each block's MLP in
// several passes; a calibration observer makes it one pass. Every token's
// MLP is independent of the others, so both give the same logits.
TEST_P(ModelTest, MlpChunksMatchOneMlpPass) {
  std::vector<int32_t> prompt(300);
  for (size_t i = 0; i < prompt.size(); ++i) {
    prompt[i] = static_cast<int32_t>((i * 37 + 11) % 97);
  }
  auto model = Model::Open(dir_.path(), {});
  ASSERT_TRUE(model.ok());
  std::vector<float> chunked, whole;
  Session a(**model, 300);
  ASSERT_TRUE(a.Forward(prompt, LogitsRows::kAll, &chunked).ok());
  int64_t down_calls = 0;
  const LinearInputObserver count = [&](int64_t, LinearInput input,
                                        const float*, int64_t tokens, int64_t) {
    if (input == LinearInput::kMlpDown) {
      ++down_calls;
      EXPECT_EQ(tokens, 300);
    }
  };
  Session b(**model, 300);
  b.set_linear_input_observer(&count);
  ASSERT_TRUE(b.Forward(prompt, LogitsRows::kAll, &whole).ok());
  EXPECT_GT(down_calls, 0);
  ASSERT_EQ(chunked.size(), whole.size());
  for (size_t i = 0; i < whole.size(); ++i) {
    ASSERT_NEAR(chunked[i], whole[i], 1e-5) << "logit " << i;
  }
}

TEST_P(ModelTest, PrefillMatchesTokenByTokenDecode) {
  auto model = Model::Open(dir_.path(), {});
  ASSERT_TRUE(model.ok());
  Session batch(**model, 64);
  std::vector<float> all;
  ASSERT_TRUE(batch.Forward(kTokens, LogitsRows::kAll, &all).ok());
  Session steps(**model, 64);
  std::vector<float> row;
  const int64_t vocab = 97;
  for (size_t t = 0; t < kTokens.size(); ++t) {
    const int32_t one[] = {kTokens[t]};
    ASSERT_TRUE(steps.Forward(one, LogitsRows::kLast, &row).ok());
    ASSERT_EQ(row.size(), size_t(vocab));
    for (int64_t i = 0; i < vocab; ++i) {
      ASSERT_NEAR(row[i], all[t * vocab + i], 1e-5) << "position " << t;
    }
  }
  EXPECT_EQ(steps.position(), int64_t(kTokens.size()));
}

INSTANTIATE_TEST_SUITE_P(
    Families, ModelTest,
    ::testing::Values(
        Variant{"llama_bf16", false, false, "default", DType::kBF16},
        Variant{"qwen2_bias_f32", true, false, "default", DType::kF32},
        Variant{"qwen3_qknorm_f16", false, true, "default", DType::kF16},
        Variant{"llama3_rope_f32", false, false, "llama3", DType::kF32}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(ModelErrorsTest, RejectsTokensOutsideVocabularyAndOverCapacity) {
  ScopedTempDir dir;
  ASSERT_TRUE(WriteTestPackage(dir.path(), TinyConfig(), DType::kF32, 2).ok());
  auto model = Model::Open(dir.path(), {});
  ASSERT_TRUE(model.ok());
  Session session(**model, 4);
  std::vector<float> logits;
  const int32_t bad[] = {1, 97};
  absl::Status s = session.Forward(bad, LogitsRows::kLast, &logits);
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(std::string(s.message()), HasSubstr("token id 97"));
  const int32_t five[] = {1, 2, 3, 4, 5};
  EXPECT_EQ(session.Forward(five, LogitsRows::kLast, &logits).code(),
            absl::StatusCode::kOutOfRange);
}

TEST(ModelObserverTest, SeesEveryBlockAndOnlyCurrentEmbeddingRows) {
  ScopedTempDir dir;
  ASSERT_TRUE(WriteTestPackage(dir.path(), TinyConfig(), DType::kF32, 2).ok());
  auto model = Model::Open(dir.path(), {});
  ASSERT_TRUE(model.ok());
  Session session(**model, 16);
  std::vector<int64_t> layers;
  BlockObserver observer = [&](int64_t layer, const float*, int64_t n) {
    layers.push_back(layer);
    EXPECT_EQ(n, int64_t(kTokens.size()));
  };
  std::vector<float> logits;
  ASSERT_TRUE(
      session.Forward(kTokens, LogitsRows::kNone, &logits, &observer).ok());
  EXPECT_THAT(layers, ::testing::ElementsAre(0, 1, 2));
  EXPECT_TRUE(logits.empty());
  // Disk embedding: one f32 row of 32 values per token, nothing more.
  EXPECT_EQ((*model)->embedding_bytes_read(), kTokens.size() * 32 * 4);
  // The whole prompt goes through each block in turn: every block is read
  // once (plus, possibly, the prefetch of block 0 for the next token).
  const LoaderStats stats = (*model)->loader().stats();
  EXPECT_GE(stats.blocks_loaded, 3u);
  EXPECT_LE(stats.blocks_loaded, 4u);
}

TEST(SamplerTest, GreedyAndSeededSampling) {
  const std::vector<float> logits = {0.1f, 2.0f, 1.9f, -1.0f, 1.95f};
  EXPECT_EQ(Argmax(logits), 1);
  EXPECT_NEAR(Top2Margin(logits), 0.05, 1e-6);
  EXPECT_EQ(Sampler({}).Sample(logits), 1);  // temperature 0 = greedy

  SamplingOptions options;
  options.temperature = 1.0;
  options.seed = 1234;
  Sampler a(options), b(options);
  std::map<int32_t, int> seen;
  for (int i = 0; i < 200; ++i) {
    const int32_t x = a.Sample(logits);
    EXPECT_EQ(x, b.Sample(logits));  // same seed, same stream
    seen[x]++;
  }
  EXPECT_GE(seen.size(), 3u);  // temperature 1 explores

  options.top_k = 2;
  Sampler top2(options);
  for (int i = 0; i < 100; ++i) {
    const int32_t x = top2.Sample(logits);
    EXPECT_TRUE(x == 1 || x == 4) << x;
  }
  options.top_k = 0;
  options.top_p = 0.01;  // the nucleus is the single most likely token
  Sampler nucleus(options);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(nucleus.Sample(logits), 1);
}

// A huge capacity (e.g. -n 1000000000) must not allocate up front: the KV
// cache grows with the tokens actually processed, and results are the same.
TEST(SessionTest, KvCacheGrowsOnDemand) {
  ScopedTempDir dir;
  const ModelConfig config = TinyConfig();
  ASSERT_TRUE(WriteTestPackage(dir.path(), config, DType::kF32, 5).ok());
  auto model = Model::Open(dir.path(), ModelOptions{});
  ASSERT_TRUE(model.ok()) << model.status();
  Session huge(**model, int64_t{1} << 40);
  EXPECT_EQ(huge.kv_cache_bytes(), 0u);
  std::vector<float> grown, fixed;
  for (int32_t t : kTokens) {
    ASSERT_TRUE(huge.Forward({&t, 1}, LogitsRows::kLast, &grown).ok());
  }
  const uint64_t per_token =
      2ull * config.num_layers * config.kv_dim() * sizeof(float);
  // Each transposed key row also carries kKeyPadding floats.
  const uint64_t padding =
      static_cast<uint64_t>(config.num_layers * config.kv_dim() * kKeyPadding) *
      sizeof(float);
  EXPECT_GE(huge.kv_cache_bytes(), kTokens.size() * per_token + padding);
  EXPECT_LE(huge.kv_cache_bytes(), 2 * kTokens.size() * per_token + padding);
  Session exact(**model, static_cast<int64_t>(kTokens.size()));
  ASSERT_TRUE(exact.Forward(kTokens, LogitsRows::kLast, &fixed).ok());
  ASSERT_EQ(grown.size(), fixed.size());
  EXPECT_LT(Nmse(grown, fixed), 1e-10);
}

}  // namespace
}  // namespace llmpack::runtime
