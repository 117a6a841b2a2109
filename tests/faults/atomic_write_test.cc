// Atomicity under faults (issue 11, item 5): the real tools are killed with
// SIGKILL at exact points of their output protocol (traced with ptrace, see
// child_process.h) or hit a file-size limit, and then the output path must
// hold no package (or the previous one, byte for byte, still verifying), and
// the next run must remove the dead run's staging folder and succeed. A live
// run's staging folder must survive another run's cleanup.
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>  // RENAME_EXCHANGE

#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "faults/child_process.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "llmpack/checksum.h"
#include "llmpack/manifest.h"
#include "support/test_paths.h"

namespace llmpack::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

fs::path Checkpoint() { return TestdataDir() / "trained-llama" / "hf"; }

// Every file under `dir` (relative name -> XXH3), to show a package is
// untouched byte for byte.
std::map<std::string, uint64_t> Digest(const fs::path& dir) {
  std::map<std::string, uint64_t> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    absl::StatusOr<uint64_t> sum = ChecksumFile(e.path());
    out[fs::relative(e.path(), dir).string()] = sum.ok() ? *sum : 0;
  }
  return out;
}

// OK when `dir` is a complete package: manifest, every file's checksum.
absl::Status Verifies(const fs::path& dir) {
  absl::StatusOr<Manifest> m = ReadManifest(dir);
  if (!m.ok()) return m.status();
  return VerifyPackageFiles(dir, *m, /*verify_checksums=*/true);
}

// Entries beside `out` that belong to the staging protocol for it.
std::vector<std::string> Leftovers(const fs::path& out) {
  std::vector<std::string> names;
  const std::string prefix = "." + out.filename().string() + ".";
  for (const auto& e : fs::directory_iterator(out.parent_path())) {
    const std::string name = e.path().filename().string();
    if (absl::StartsWith(name, prefix)) names.push_back(name);
  }
  return names;
}

bool Inside(const std::string& path, const fs::path& parent,
            const std::string& staging_prefix) {
  return absl::StartsWith(path, (parent / staging_prefix).string());
}

ChildResult Convert(const fs::path& out, std::vector<std::string> extra = {},
                    const SyscallHook& hook = nullptr,
                    uint64_t file_size_limit = 0) {
  ChildOptions o;
  o.argv = {ToolPath("llmconvert"), Checkpoint().string(), "-o", out.string(),
            "-q"};
  o.argv.insert(o.argv.end(), extra.begin(), extra.end());
  o.file_size_limit = file_size_limit;
  return RunChild(o, hook);
}

// A hook that kills at the first call `match` accepts.
SyscallHook KillWhen(std::function<bool(const SyscallEntry&)> match) {
  return [match](const SyscallEntry& e) {
    return match(e) ? HookAction::kKill : HookAction::kContinue;
  };
}

// Where a conversion is killed. Each names a moment of the writer's
// protocol; `previous` runs it with --force over an existing package.
struct KillPoint {
  std::string name;
  // Given the output path and a counter local to the run, decides whether
  // to kill at this call.
  std::function<bool(const fs::path& out, const SyscallEntry&, int& count)> at;
};

// gtest prints parameters with this (the default dumps the object's bytes).
void PrintTo(const KillPoint& point, std::ostream* os) { *os << point.name; }

std::string StagingPrefix(const fs::path& out) {
  return "." + out.filename().string() + ".partial-";
}

std::vector<KillPoint> ConvertKillPoints() {
  return {
      {"BeforeThirdBlockFile",
       [](const fs::path& out, const SyscallEntry& e, int&) {
         return e.name == "openat" && (e.flags & O_CREAT) &&
                Inside(e.path, out.parent_path(), StagingPrefix(out)) &&
                absl::EndsWith(e.path, "/block_002.bin");
       }},
      {"MidBlockWrite",
       [](const fs::path& out, const SyscallEntry& e, int& count) {
         return e.name == "pwrite64" &&
                Inside(e.path, out.parent_path(), StagingPrefix(out)) &&
                absl::EndsWith(e.path, "/block_001.bin") && ++count == 2;
       }},
      {"WritingManifest",
       [](const fs::path& out, const SyscallEntry& e, int&) {
         return e.name == "write" &&
                Inside(e.path, out.parent_path(), StagingPrefix(out)) &&
                absl::StrContains(e.path, "/.manifest.json.partial-");
       }},
      {"JustBeforeRename",
       [](const fs::path& out, const SyscallEntry& e, int&) {
         return e.name == "rename" && e.path2 == out.string() &&
                Inside(e.path, out.parent_path(), StagingPrefix(out));
       }},
  };
}

class ConvertKilledTest
    : public ::testing::TestWithParam<std::tuple<KillPoint, bool>> {};

TEST_P(ConvertKilledTest, LeavesNoPackageAndNextRunCleansUp) {
  const auto& [point, previous] = GetParam();
  ScopedTempDir tmp;
  const fs::path out = tmp.path() / "pkg";
  std::map<std::string, uint64_t> before;
  if (previous) {
    // The previous package differs from the new one (f32 vs bf16).
    ASSERT_EQ(Convert(out, {"--dtype", "f32"}).exit_code, 0);
    before = Digest(out);
  }
  std::vector<std::string> force;
  if (previous) force.push_back("--force");
  int count = 0;
  const ChildResult killed =
      Convert(out, force, KillWhen([&, at = point.at](const SyscallEntry& e) {
                return at(out, e, count);
              }));
  ASSERT_TRUE(killed.killed_by_hook)
      << point.name << " never reached: " << killed.output;
  EXPECT_EQ(killed.signal, SIGKILL);

  if (previous) {
    EXPECT_EQ(Digest(out), before) << "previous package changed";
    EXPECT_TRUE(Verifies(out).ok()) << Verifies(out);
  } else {
    EXPECT_FALSE(fs::exists(out)) << "something appeared at the output";
  }
  // The dead run's staging folder and its lock file are still there...
  EXPECT_THAT(Leftovers(out), ::testing::SizeIs(2));

  // ...until the next run to the same output, which removes them.
  const ChildResult next = Convert(out, {"--force"});
  ASSERT_EQ(next.exit_code, 0) << next.output;
  EXPECT_THAT(Leftovers(out), ::testing::IsEmpty());
  EXPECT_TRUE(Verifies(out).ok()) << Verifies(out);
  EXPECT_EQ(ReadManifest(out)->weights_dtype, "bf16");
}

INSTANTIATE_TEST_SUITE_P(
    KillPoints, ConvertKilledTest,
    ::testing::Combine(::testing::ValuesIn(ConvertKillPoints()),
                       ::testing::Bool()),
    [](const auto& info) {
      return std::get<0>(info.param).name +
             (std::get<1>(info.param) ? "OverPrevious" : "New");
    });

// After the atomic swap the output already is the new package; a kill while
// the old one (now on the staging name) is removed loses nothing.
TEST(ConvertKilledAfterSwapTest, OutputIsTheNewPackage) {
  ScopedTempDir tmp;
  const fs::path out = tmp.path() / "pkg";
  ASSERT_EQ(Convert(out, {"--dtype", "f32"}).exit_code, 0);
  bool swapped = false;
  const ChildResult killed =
      Convert(out, {"--force"}, [&](const SyscallEntry& e) {
        if (e.name == "rename" && e.path2 == out.string() &&
            e.flags == RENAME_EXCHANGE) {
          swapped = true;
          return HookAction::kContinue;
        }
        return swapped && e.name == "unlink" ? HookAction::kKill
                                             : HookAction::kContinue;
      });
  ASSERT_TRUE(killed.killed_by_hook) << killed.output;
  EXPECT_TRUE(Verifies(out).ok()) << Verifies(out);
  EXPECT_EQ(ReadManifest(out)->weights_dtype, "bf16");
  EXPECT_THAT(Leftovers(out), ::testing::SizeIs(2));  // the old package
  ASSERT_EQ(Convert(out, {"--force"}).exit_code, 0);
  EXPECT_THAT(Leftovers(out), ::testing::IsEmpty());
}

// Another run to the same output must not remove the staging folder of a run
// that is still writing (its lock is held), and both finish.
TEST(LiveRunTest, StagingFolderOfALiveRunIsNotRemoved) {
  ScopedTempDir tmp;
  const fs::path out = tmp.path() / "pkg";
  fs::path live_staging;
  ChildResult second;
  const ChildResult first =
      Convert(out, {"--force"}, [&](const SyscallEntry& e) {
        if (second.exit_code == -1 && e.name == "openat" &&
            (e.flags & O_CREAT) &&
            Inside(e.path, tmp.path(), StagingPrefix(out)) &&
            absl::EndsWith(e.path, "/block_001.bin")) {
          live_staging = fs::path(e.path).parent_path();
          // The first run is stopped here, mid-write, while the second runs.
          second = Convert(out, {"--force"});
          EXPECT_TRUE(fs::is_directory(live_staging))
              << "the live run's staging folder was removed";
        }
        return HookAction::kContinue;
      });
  ASSERT_FALSE(live_staging.empty());
  EXPECT_EQ(second.exit_code, 0) << second.output;
  EXPECT_EQ(first.exit_code, 0) << first.output;
  EXPECT_TRUE(Verifies(out).ok()) << Verifies(out);
  EXPECT_THAT(Leftovers(out), ::testing::IsEmpty());
}

// A full disk (here RLIMIT_FSIZE: writes past 1 MiB fail with EFBIG) is a
// clean error naming the file, and leaves nothing, nor harms the previous
// package.
TEST(FullDiskTest, ConvertFailsCleanlyAndLeavesNothing) {
  ScopedTempDir tmp;
  const fs::path out = tmp.path() / "pkg";
  const ChildResult fresh = Convert(out, {}, nullptr, 1 << 20);
  EXPECT_EQ(fresh.exit_code, 1) << fresh.output;
  EXPECT_THAT(fresh.output, HasSubstr("embedding.bin"));
  EXPECT_THAT(fresh.output, HasSubstr("File too large"));
  EXPECT_FALSE(fs::exists(out));
  EXPECT_THAT(Leftovers(out), ::testing::IsEmpty());

  ASSERT_EQ(Convert(out).exit_code, 0);
  const auto before = Digest(out);
  const ChildResult force = Convert(out, {"--force"}, nullptr, 1 << 20);
  EXPECT_EQ(force.exit_code, 1) << force.output;
  EXPECT_EQ(Digest(out), before);
  EXPECT_THAT(Leftovers(out), ::testing::IsEmpty());
}

// ------------------------------------------------------------- llmquant

class QuantKilledTest : public ::testing::Test {
 protected:
  void SetUp() override {
    input_ = tmp_.path() / "f32";
    ASSERT_EQ(Convert(input_, {"--dtype", "f32"}).exit_code, 0);
    out_ = tmp_.path() / "q";
    // Calibration windows (token ids, 64 x 256): more than the 1024 tokens
    // calibrating this model needs.
    calib_ = TestdataDir() / "trained-llama" / "eval_windows.json";
  }
  ChildResult Quant(std::vector<std::string> extra,
                    const SyscallHook& hook = nullptr,
                    uint64_t file_size_limit = 0) {
    ChildOptions o;
    o.argv = {
        ToolPath("llmquant"), input_.string(), "-o", out_.string(), "--int4",
        "--method",           "rtn",           "-q"};
    o.argv.insert(o.argv.end(), extra.begin(), extra.end());
    o.file_size_limit = file_size_limit;
    return RunChild(o, hook);
  }
  ScopedTempDir tmp_;
  fs::path input_, out_, calib_;
};

TEST_F(QuantKilledTest, KilledAtEachPointLeavesPreviousPackageIntact) {
  ASSERT_EQ(Quant({"--group", "64"}).exit_code, 0);
  const auto before = Digest(out_);
  const auto input_before = Digest(input_);
  const std::string staging = StagingPrefix(out_);
  const std::string work = "." + out_.filename().string() + ".work-";
  const std::vector<
      std::pair<std::string, std::function<bool(const SyscallEntry&)>>>
      points = {
          {"BeforeSecondBlockFile",
           [&](const SyscallEntry& e) {
             return e.name == "openat" && (e.flags & O_CREAT) &&
                    Inside(e.path, tmp_.path(), staging) &&
                    absl::EndsWith(e.path, "/block_001.bin");
           }},
          {"ReplacingBlockInCalibrationCopy",
           [&](const SyscallEntry& e) {
             return e.name == "pwrite64" && Inside(e.path, tmp_.path(), work) &&
                    absl::EndsWith(e.path, "/block_001.bin");
           }},
          {"JustBeforeRename",
           [&](const SyscallEntry& e) {
             return e.name == "rename" && e.path2 == out_.string();
           }},
      };
  for (const auto& [name, at] : points) {
    SCOPED_TRACE(name);
    const ChildResult killed =
        Quant({"--force", "--calib", calib_.string(), "--calib-tokens", "1024"},
              KillWhen(at));
    ASSERT_TRUE(killed.killed_by_hook) << name << ": " << killed.output;
    EXPECT_EQ(Digest(out_), before);
    EXPECT_TRUE(Verifies(out_).ok());
    EXPECT_FALSE(Leftovers(out_).empty());
  }
  EXPECT_EQ(Digest(input_), input_before) << "the input was written through";
  const ChildResult next = Quant({"--force"});
  ASSERT_EQ(next.exit_code, 0) << next.output;
  EXPECT_THAT(Leftovers(out_), ::testing::IsEmpty());
  EXPECT_TRUE(Verifies(out_).ok());
  EXPECT_NE(Digest(out_), before);  // group 32 now, not 64
}

TEST_F(QuantKilledTest, FullDiskFailsCleanlyAndLeavesNothing) {
  // 64 KiB is less than the tokenizer file copied first and any block file.
  const ChildResult r = Quant({}, nullptr, 64 << 10);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("File too large"));
  EXPECT_FALSE(fs::exists(out_));
  EXPECT_THAT(Leftovers(out_), ::testing::IsEmpty());
}

// --------------------------------------------------- single-file outputs

TEST(TokenizerOnlyKilledTest, PreviousFileIntactAndNextRunCleansUp) {
  ScopedTempDir tmp;
  const fs::path out = tmp.path() / "tokenizer.txt";
  auto run = [&](const SyscallHook& hook, uint64_t fsize = 0) {
    ChildOptions o;
    o.argv = {ToolPath("llmconvert"), Checkpoint().string(), "-o",
              out.string(),           "--tokenizer-only",    "-q"};
    o.file_size_limit = fsize;
    return RunChild(o, hook);
  };
  ASSERT_EQ(run(nullptr).exit_code, 0);
  const uint64_t before = *ChecksumFile(out);
  for (const char* call : {"write", "rename"}) {
    SCOPED_TRACE(call);
    const ChildResult killed = run(KillWhen([&](const SyscallEntry& e) {
      return e.name == call && Inside(e.path, tmp.path(), StagingPrefix(out));
    }));
    ASSERT_TRUE(killed.killed_by_hook) << killed.output;
    EXPECT_EQ(*ChecksumFile(out), before);
    EXPECT_THAT(Leftovers(out), ::testing::SizeIs(2));
  }
  const ChildResult full = run(nullptr, 4096);
  EXPECT_EQ(full.exit_code, 1) << full.output;
  EXPECT_THAT(full.output, HasSubstr("tokenizer.txt"));
  EXPECT_THAT(full.output, HasSubstr("File too large"));
  EXPECT_EQ(*ChecksumFile(out), before);
  ASSERT_EQ(run(nullptr).exit_code, 0);
  EXPECT_THAT(Leftovers(out), ::testing::IsEmpty());
}

// llmverify's --save-reference bundle and --json report are single files
// written the same way: a kill while writing either leaves no file at its
// path, and the next run removes the staging file.
TEST(VerifyOutputsKilledTest, NoBundleOrReportAndNextRunCleansUp) {
  ScopedTempDir tmp;
  const fs::path package = tmp.path() / "pkg";
  ASSERT_EQ(Convert(package).exit_code, 0);
  const fs::path bundle = tmp.path() / "a.llmref";
  const fs::path report = tmp.path() / "report.json";
  auto run = [&](const SyscallHook& hook) {
    ChildOptions o;
    o.argv = {ToolPath("llmverify"),
              package.string(),
              "--prompt-ids",
              "1,5,9,11",
              "-n",
              "2",
              "--save-reference",
              bundle.string(),
              "--json",
              report.string(),
              "--quiet"};
    return RunChild(o, hook);
  };
  for (const fs::path& out : {bundle, report}) {
    SCOPED_TRACE(out.filename().string());
    const ChildResult killed = run(KillWhen([&](const SyscallEntry& e) {
      return e.name == "write" &&
             Inside(e.path, tmp.path(), StagingPrefix(out));
    }));
    ASSERT_TRUE(killed.killed_by_hook) << killed.output;
    EXPECT_FALSE(fs::exists(out));
    EXPECT_THAT(Leftovers(out), ::testing::SizeIs(2));
  }
  const ChildResult next = run(nullptr);
  ASSERT_EQ(next.exit_code, 0) << next.output;
  EXPECT_TRUE(fs::exists(bundle));
  EXPECT_TRUE(fs::exists(report));
  EXPECT_THAT(Leftovers(bundle), ::testing::IsEmpty());
  EXPECT_THAT(Leftovers(report), ::testing::IsEmpty());
}

}  // namespace
}  // namespace llmpack::testing
