// .npy parsing, reference bundles (full and top-k) and logits comparison.
#include "verify/reference.h"

#include <cstring>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "llmpack/file_util.h"
#include "support/test_paths.h"
#include "verify/npy.h"

namespace llmpack::verify {
namespace {

using ::llmpack::testing::ScopedTempDir;
using ::testing::HasSubstr;

std::string NpyBytes(const std::string& descr, const std::string& shape,
                     const std::vector<float>& data) {
  std::string header = "{'descr': '" + descr +
                       "', 'fortran_order': False, 'shape': " + shape + ", }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(header.size() & 0xFF);
  out += static_cast<char>(header.size() >> 8);
  out += header;
  out.append(reinterpret_cast<const char*>(data.data()), data.size() * 4);
  return out;
}

TEST(NpyTest, ParsesFloat32Matrix) {
  auto a = ParseNpy(NpyBytes("<f4", "(2, 3)", {1, 2, 3, 4, 5, 6}), "x.npy");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a->data[5], 6.0f);
}

TEST(NpyTest, RejectsOtherDtypesAndTruncation) {
  auto f8 = ParseNpy(NpyBytes("<f8", "(2,)", {1, 2, 3, 4}), "x.npy");
  ASSERT_FALSE(f8.ok());
  EXPECT_THAT(std::string(f8.status().message()), HasSubstr("<f8"));
  auto short_data = ParseNpy(NpyBytes("<f4", "(3,)", {1, 2}), "x.npy");
  ASSERT_FALSE(short_data.ok());
  EXPECT_THAT(std::string(short_data.status().message()),
              HasSubstr("shape needs 12"));
  EXPECT_FALSE(ParseNpy("not numpy", "x.npy").ok());
}

ReferenceBundle SampleBundle() {
  ReferenceBundle b;
  ReferenceCase c;
  c.name = "case a";
  c.input_ids = {0, 5, 6};
  c.greedy = {7, 8};
  c.logits.positions = {0, 1, 2};
  c.logits.vocab = 5;
  c.logits.full = {0, 1, 2, 3, 4, 4, 3, 2, 1, 0, 1, 9, 1, 1, 1};
  b.cases.push_back(c);
  b.info = {{"package", "somewhere"}};
  return b;
}

TEST(ReferenceBundleTest, FullRowsRoundTrip) {
  ScopedTempDir dir;
  const auto path = dir.path() / "ref.llmref";
  ASSERT_TRUE(WriteReferenceBundle(path, SampleBundle()).ok());
  auto raw = ReadFileToString(path);
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(static_cast<uint8_t>((*raw)[0]), 0x28);  // a zstd frame
  auto back = ReadReference(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->format, kBundleFormat);
  ASSERT_EQ(back->cases.size(), 1u);
  EXPECT_EQ(back->cases[0].name, "case a");
  EXPECT_EQ(back->cases[0].greedy, (std::vector<int32_t>{7, 8}));
  EXPECT_EQ(back->cases[0].logits.full, SampleBundle().cases[0].logits.full);
  EXPECT_EQ(back->info["package"], "somewhere");
}

TEST(ReferenceBundleTest, TopKKeepsLargestLogitsAndSummary) {
  const ReferenceCase full = SampleBundle().cases[0];
  ReferenceLogits top = ReduceToTopK(full.logits.full, 5, {0, 1, 2}, 2);
  EXPECT_EQ(top.topk_ids, (std::vector<int32_t>{4, 3, 0, 1, 1, 0}));
  EXPECT_EQ(top.topk_values, (std::vector<float>{4, 3, 4, 3, 9, 1}));
  EXPECT_FLOAT_EQ(top.row_mean[0], 2.0f);
  EXPECT_FLOAT_EQ(top.row_variance[0], 2.0f);

  ScopedTempDir dir;
  ReferenceBundle b = SampleBundle();
  b.cases[0].logits = top;
  const auto path = dir.path() / "top.llmref";
  ASSERT_TRUE(WriteReferenceBundle(path, b).ok());
  auto back = ReadReference(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->cases[0].logits.top_k, 2);
  EXPECT_EQ(back->cases[0].logits.topk_ids, top.topk_ids);
  EXPECT_EQ(back->cases[0].logits.row_logsumexp, top.row_logsumexp);

  // The run that produced the bundle compares perfectly against it.
  auto same = CompareLogits(full.logits.full, back->cases[0].logits);
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->nmse, 0);
  EXPECT_EQ(same->top1_agreement, 1);
  EXPECT_NEAR(same->max_logsumexp_error, 0, 1e-6);
}

TEST(ReferenceBundleTest, CorruptBundleIsAnError) {
  ScopedTempDir dir;
  const auto path = dir.path() / "ref.llmref";
  ASSERT_TRUE(WriteReferenceBundle(path, SampleBundle()).ok());
  auto raw = ReadFileToString(path);
  ASSERT_TRUE(raw.ok());
  ASSERT_TRUE(WriteStringToFile(path, raw->substr(0, raw->size() / 2)).ok());
  auto back = ReadReference(path);
  ASSERT_FALSE(back.ok());
  EXPECT_THAT(std::string(back.status().message()), HasSubstr("ref.llmref"));
}

TEST(CompareLogitsTest, MeasuresErrorsAndAgreement) {
  ReferenceLogits ref = SampleBundle().cases[0].logits;
  std::vector<float> ours = ref.full;
  ours[1] += 0.5f;   // row 0: error, same argmax
  ours[10] = 10.0f;  // row 2: argmax moves from 1 to 0
  auto c = CompareLogits(ours, ref);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->rows, 3);
  EXPECT_FLOAT_EQ(c->max_abs_error, 9.0);
  EXPECT_NEAR(c->top1_agreement, 2.0 / 3, 1e-12);
  EXPECT_GT(c->nmse, 0);
  EXPECT_LT(c->min_cosine, 1);
  ours.pop_back();
  EXPECT_FALSE(CompareLogits(ours, ref).ok());  // wrong vocabulary
}

}  // namespace
}  // namespace llmpack::verify
