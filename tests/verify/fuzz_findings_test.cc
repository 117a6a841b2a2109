// Inputs found by the fuzzers in tests/fuzz (reference_fuzz, npy_fuzz) that
// crashed the readers, minimized and kept as regression tests.
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "llmpack/file_util.h"
#include "support/test_paths.h"
#include "verify/npy.h"
#include "verify/reference.h"

namespace llmpack::verify {
namespace {

using ::llmpack::testing::ScopedTempDir;
using ::testing::HasSubstr;

// A version 1.0 .npy header for `shape` and no data.
std::string NpyHeaderOnly(const std::string& shape) {
  const std::string header =
      "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }\n";
  return std::string("\x93NUMPY\x01\x00", 8) +
         static_cast<char>(header.size()) + '\0' + header;
}

std::string Message(const absl::Status& status) {
  return std::string(status.message());
}

// npy_fuzz: the element count overflowed int64 (UBSan: signed overflow),
// and a wrapped count could match the data size.
TEST(VerifyFuzzFindingsTest, NpyShapeOverflowingInt64IsAnError) {
  auto a = ParseNpy(NpyHeaderOnly("(4611686018427387904, 4)"), "x.npy");
  ASSERT_FALSE(a.ok());
  EXPECT_THAT(Message(a.status()), HasSubstr("x.npy: npy shape ("));
  EXPECT_THAT(Message(a.status()), HasSubstr("is too large"));
  // 2^62 elements of 4 bytes wrap to 0 bytes: must not parse as empty.
  auto wrapped = ParseNpy(NpyHeaderOnly("(4611686018427387904,)"), "y.npy");
  ASSERT_FALSE(wrapped.ok());
  EXPECT_THAT(Message(wrapped.status()), HasSubstr("is too large"));
}

// npy_fuzz (artifact npy-crash-a5405da6): a shape with a 0 dim passed
// memcpy a null destination (UBSan: null pointer passed as argument 1).
TEST(VerifyFuzzFindingsTest, NpyWithZeroElementsParsesAsEmpty) {
  auto a = ParseNpy(NpyHeaderOnly("(2, 0)"), "x.npy");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->shape, (std::vector<int64_t>{2, 0}));
  EXPECT_TRUE(a->data.empty());
}

// reference_fuzz: a zstd frame whose header declares 2^40 bytes made the
// reader allocate them up front (ASan: allocation-size-too-big).
TEST(VerifyFuzzFindingsTest, BundleFrameDeclaringTerabyteIsAnError) {
  // Frame: magic, descriptor (8-byte content size, window byte), window
  // 1 KiB, content size 2^40, one empty raw last block.
  const std::string frame(
      "\x28\xB5\x2F\xFD\xC0\x00"
      "\x00\x00\x00\x00\x00\x01\x00\x00"
      "\x01\x00\x00",
      17);
  ScopedTempDir dir;
  const auto path = dir.path() / "huge.llmref";
  ASSERT_TRUE(WriteStringToFile(path, frame).ok());
  auto bundle = ReadReference(path);
  ASSERT_FALSE(bundle.ok());
  EXPECT_THAT(Message(bundle.status()),
              HasSubstr("huge.llmref: reference bundle decompresses to 0 "
                        "bytes, its header says 1099511627776"));
}

// reference_fuzz: a field of the wrong JSON type made nlohmann::json throw
// out of the library (std::terminate).
TEST(VerifyFuzzFindingsTest, ReferenceFieldOfWrongTypeIsAnError) {
  ScopedTempDir dir;
  std::string npy = NpyHeaderOnly("(1, 1)");
  npy.append(4, '\0');
  ASSERT_TRUE(WriteStringToFile(dir.path() / "a.npy", npy).ok());
  const auto path = dir.path() / "reference.json";
  ASSERT_TRUE(WriteStringToFile(path,
                                R"({"refs":[{"input_ids":[1],)"
                                R"("logits_file":"a.npy","logits_rows":5}]})")
                  .ok());
  auto bundle = ReadReference(path);
  ASSERT_FALSE(bundle.ok());
  EXPECT_THAT(Message(bundle.status()),
              HasSubstr("reference.json: malformed reference field"));
}

}  // namespace
}  // namespace llmpack::verify
