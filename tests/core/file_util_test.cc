#include "llmpack/file_util.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

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

// Names beside `out` (staging entries and lock files).
std::vector<std::string> Beside(const fs::path& out) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(out.parent_path())) {
    if (e.path() != out) names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

TEST(StagingDirectoryTest, ReplacingLeavesOnlyTheNewOutput) {
  testing::ScopedTempDir tmp;
  const fs::path out = tmp.path() / "pkg";
  fs::create_directories(out);
  ASSERT_TRUE(WriteStringToFile(out / "old", "x").ok());
  auto staging = StagingDirectory::Create(out, true);
  ASSERT_TRUE(staging.ok());
  EXPECT_THAT(Beside(out), ::testing::SizeIs(2));  // folder + lock
  EXPECT_TRUE(fs::exists(out / "old")) << "old output touched before Commit";
  ASSERT_TRUE(WriteStringToFile(staging->path() / "new", "y").ok());
  ASSERT_TRUE(staging->Commit().ok());
  staging = StagingDirectory();
  EXPECT_TRUE(fs::exists(out / "new"));
  EXPECT_FALSE(fs::exists(out / "old"));
  EXPECT_THAT(Beside(out), ::testing::IsEmpty());
}

TEST(StagingDirectoryTest, TrailingSeparatorStagesBesideTheOutput) {
  testing::ScopedTempDir tmp;
  auto staging = StagingDirectory::Create(tmp.path() / "pkg" / "", false);
  ASSERT_TRUE(staging.ok());
  EXPECT_EQ(staging->path().parent_path(), tmp.path());
  ASSERT_TRUE(staging->Commit().ok());
  EXPECT_TRUE(fs::is_directory(tmp.path() / "pkg"));
}

TEST(StagingDirectoryTest, DeadRunsAreRemovedLiveAndForeignNamesKept) {
  testing::ScopedTempDir tmp;
  const fs::path out = tmp.path() / "pkg";
  // A live run in another process holds its lock until told to exit.
  int ready[2], done[2];
  ASSERT_EQ(::pipe(ready), 0);
  ASSERT_EQ(::pipe(done), 0);
  const pid_t child = ::fork();
  if (child == 0) {
    auto live = StagingDirectory::Create(out, false);
    char c = live.ok() ? 'y' : 'n';
    (void)::write(ready[1], &c, 1);
    (void)::read(done[0], &c, 1);
    ::_exit(0);  // as if killed: no destructor removes the entry
  }
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ASSERT_EQ(c, 'y');
  // A dead run: entry and lock file, nobody holds the lock.
  const fs::path dead = tmp.path() / ".pkg.partial-00000000000000ab";
  fs::create_directories(dead / "sub");
  std::ofstream(dead / "sub" / "block_000.bin") << "x";
  std::ofstream(dead.string() + ".lock");
  std::ofstream(tmp.path() / ".pkg.work-00000000000000cd.lock");  // lock only
  // Not the protocol: no lock file, a short suffix, another output's name.
  for (const char* name : {".pkg.partial-00000000000000ef", ".pkg.partial-12",
                           ".pkgx.partial-00000000000000ab"}) {
    fs::create_directories(tmp.path() / name);
  }
  std::ofstream(tmp.path() / ".pkg.partial-12.lock");
  std::ofstream(tmp.path() / ".pkgx.partial-00000000000000ab.lock");

  const std::vector<std::string> with_live = Beside(out);

  EXPECT_EQ(RemoveStaleStaging(out), 2);  // the dead entry, the lone lock
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_FALSE(fs::exists(dead.string() + ".lock"));
  EXPECT_EQ(Beside(out).size(), with_live.size() - 3);
  const std::vector<std::string> kept = Beside(out);
  // The live run's folder and lock survive; so does everything foreign.
  EXPECT_EQ(kept.size(), 7u);

  ASSERT_EQ(::write(done[1], &c, 1), 1);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_EQ(RemoveStaleStaging(out), 1);  // the run is gone now
  EXPECT_THAT(Beside(out),
              ::testing::ElementsAre(".pkg.partial-00000000000000ef",
                                     ".pkg.partial-12", ".pkg.partial-12.lock",
                                     ".pkgx.partial-00000000000000ab",
                                     ".pkgx.partial-00000000000000ab.lock"));
  for (int fd : {ready[0], ready[1], done[0], done[1]}) ::close(fd);
}

TEST(WriteStringToFileTest, ReplacesAndLeavesNothingBeside) {
  testing::ScopedTempDir tmp;
  const fs::path f = tmp.path() / "report.json";
  ASSERT_TRUE(WriteStringToFile(f, "one").ok());
  ASSERT_TRUE(WriteStringToFile(f, "two").ok());
  EXPECT_EQ(*ReadFileToString(f), "two");
  EXPECT_THAT(Beside(f), ::testing::IsEmpty());
  const absl::Status s = WriteStringToFile(tmp.path() / "no" / "f", "x");
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr("no/f"));
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
