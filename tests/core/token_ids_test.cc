// The one token-id list syntax (llmpack/token_ids.h) and the JSON reader.
#include "llmpack/token_ids.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "llmpack/file_util.h"
#include "llmpack/json_file.h"
#include "support/test_paths.h"

namespace llmpack {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(TokenIdsTest, AcceptsWhitespaceCommasAndOneBracketPair) {
  for (const char* text : {"0 51 1083", "0,51,1083", "[0, 51, 1083]",
                           "0\n51\n1083\n", " [0 ,51\t1083] "}) {
    auto ids = ParseTokenIds(text, "ids");
    ASSERT_TRUE(ids.ok()) << text << ": " << ids.status();
    EXPECT_THAT(*ids, ElementsAre(0, 51, 1083)) << text;
  }
  auto empty = ParseTokenIds(" \n", "ids");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
  auto negative = ParseTokenIds("-1", "ids");
  ASSERT_TRUE(negative.ok());  // the caller checks the vocabulary range
  EXPECT_THAT(*negative, ElementsAre(-1));
}

TEST(TokenIdsTest, RejectsAnythingElseNamingThePiece) {
  auto word = ParseTokenIds("1 two 3", "--prompt-ids");
  EXPECT_EQ(word.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(word.status().message(), HasSubstr("--prompt-ids"));
  EXPECT_THAT(word.status().message(), HasSubstr("'two' is not an integer"));
  EXPECT_FALSE(ParseTokenIds("[1, 2", "ids").ok());
  EXPECT_FALSE(ParseTokenIds("[[1]]", "ids").ok());
  EXPECT_FALSE(ParseTokenIds("1.5", "ids").ok());
  EXPECT_FALSE(ParseTokenIds("99999999999", "ids").ok());  // not an int32
}

TEST(JsonFileTest, ReadsJsonAndNamesTheFileWhenMalformed) {
  ::llmpack::testing::ScopedTempDir dir;
  const auto good = dir.path() / "good.json";
  const auto bad = dir.path() / "bad.json";
  ASSERT_TRUE(WriteStringToFile(good, R"({"a": [1, 2]})").ok());
  ASSERT_TRUE(WriteStringToFile(bad, R"({"a": [1, 2)").ok());
  auto j = ReadJsonFile(good);
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_EQ((*j)["a"][1], 2);
  auto broken = ReadJsonFile(bad);
  EXPECT_EQ(broken.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(broken.status().message(), HasSubstr("bad.json: malformed JSON"));
  EXPECT_EQ(ReadJsonFile(dir.path() / "missing.json").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace llmpack
