#include "llmpack/file_util.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "support/test_paths.h"

namespace llmpack {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

TEST(StagingDirectoryTest, NothingAppearsUntilCommit) {
  testing::ScopedTempDir tmp;
  const fs::path out = tmp.path() / "pkg";
  {
    auto staging = StagingDirectory::Create(out, false);
    ASSERT_TRUE(staging.ok());
    ASSERT_TRUE(WriteStringToFile(staging->path() / "f", "x").ok());
    EXPECT_FALSE(fs::exists(out));
  }  // abandoned
  EXPECT_FALSE(fs::exists(out));
  EXPECT_TRUE(fs::is_empty(tmp.path())) << "staging directory left behind";
  auto staging = StagingDirectory::Create(out, false);
  ASSERT_TRUE(staging.ok());
  ASSERT_TRUE(WriteStringToFile(staging->path() / "f", "x").ok());
  ASSERT_TRUE(staging->Commit().ok());
  EXPECT_TRUE(fs::exists(out / "f"));
}

TEST(StagingDirectoryTest, ExistingOutputNeedsForce) {
  testing::ScopedTempDir tmp;
  const fs::path out = tmp.path() / "pkg";
  fs::create_directories(out);
  ASSERT_TRUE(WriteStringToFile(out / "old", "x").ok());
  EXPECT_THAT(
      std::string(StagingDirectory::Create(out, false).status().message()),
      HasSubstr("--force"));
  auto staging = StagingDirectory::Create(out, true);
  ASSERT_TRUE(staging.ok());
  ASSERT_TRUE(WriteStringToFile(staging->path() / "new", "y").ok());
  ASSERT_TRUE(staging->Commit().ok());
  EXPECT_TRUE(fs::exists(out / "new"));
  EXPECT_FALSE(fs::exists(out / "old"));
}

TEST(ReadOnlyFileTest, ReadPastEndNamesFileAndSizes) {
  testing::ScopedTempDir tmp;
  ASSERT_TRUE(WriteStringToFile(tmp.path() / "f", "abc").ok());
  auto f = ReadOnlyFile::Open(tmp.path() / "f");
  ASSERT_TRUE(f.ok());
  uint8_t buf[4];
  const absl::Status s = f->ReadAt(1, absl::MakeSpan(buf, 4));
  EXPECT_THAT(std::string(s.message()), HasSubstr("past the end"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("(3 bytes)"));
}

TEST(IsSameOrInsideTest, DetectsNesting) {
  EXPECT_TRUE(IsSameOrInside("/a/b/c", "/a/b"));
  EXPECT_TRUE(IsSameOrInside("/a/b", "/a/b/"));
  EXPECT_FALSE(IsSameOrInside("/a/bc", "/a/b"));
  EXPECT_FALSE(IsSameOrInside("/a", "/a/b"));
}

}  // namespace
}  // namespace llmpack
