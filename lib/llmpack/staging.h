// All-or-nothing output: every file or folder a tool writes is built under a
// hidden staging name beside its final path and renamed into place when
// complete, so a run killed at any point (SIGKILL included) never leaves a
// partial output at the final path and never harms the output it replaces.
//
// Naming and lock protocol (formats/package_format.md, "Staging and
// cleanup"): for the output DIR/NAME a run works in DIR/.NAME.<kind>-<16 hex>
// (a folder or a file) and holds flock(LOCK_EX) on DIR/.NAME.<kind>-<16
// hex>.lock for its whole life. The lock file is created (and locked) before
// the entry and removed after it. RemoveStaleStaging removes the entries of
// dead runs: those whose lock file it can lock without waiting.
//
// Thread safety: the classes are not thread-safe; separate objects (and
// separate processes) may stage the same output at once.
#ifndef LLMPACK_STAGING_H_
#define LLMPACK_STAGING_H_

#include <filesystem>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace llmpack {

// Writes `contents` to `path` via a locked staging file, fsync and rename,
// so readers never see half a file and a killed run leaves only a staging
// file the next write to `path` removes. Replaces an existing file.
absl::Status WriteStringToFile(const std::filesystem::path& path,
                               std::string_view contents);

// Removes the staging entries (and their lock files) that dead runs left for
// `final_path`; entries whose lock a live run holds, and names that do not
// follow the protocol, are never touched. Best effort: returns how many
// entries were removed.
int RemoveStaleStaging(const std::filesystem::path& final_path);

// The lock of one staging entry: owns the lock file's descriptor (and so the
// flock). Move-only. Destroying it removes the lock file unless Keep() was
// called, then releases the lock.
class StagingLock {
 public:
  // Creates and locks a fresh lock file for `final_path` and `kind`
  // ("partial": an output being written, "work": a scratch copy); the entry
  // path it guards does not exist yet.
  static absl::StatusOr<StagingLock> Acquire(
      const std::filesystem::path& final_path, std::string_view kind);
  StagingLock() = default;
  StagingLock(StagingLock&& other) noexcept;
  StagingLock& operator=(StagingLock&& other) noexcept;
  ~StagingLock();

  const std::filesystem::path& entry() const { return entry_; }
  // Leaves the lock file on disk when released, so that a later
  // RemoveStaleStaging retries removing an entry this run could not.
  void Keep() { keep_ = true; }

 private:
  void Release();
  int fd_ = -1;
  std::filesystem::path entry_;
  bool keep_ = false;
};

// A locked staging folder beside `final_dir` that becomes `final_dir` only on
// Commit(); removed with its contents otherwise (by the destructor, or by a
// later run's RemoveStaleStaging if this process is killed).
class StagingDirectory {
 public:
  // Fails if final_dir exists and `replace_existing` is false. Removes the
  // stale staging entries of final_dir first.
  static absl::StatusOr<StagingDirectory> Create(
      const std::filesystem::path& final_dir, bool replace_existing,
      std::string_view kind = "partial");
  StagingDirectory() = default;
  StagingDirectory(StagingDirectory&& other) noexcept = default;
  StagingDirectory& operator=(StagingDirectory&& other) noexcept;
  ~StagingDirectory();

  const std::filesystem::path& path() const { return lock_.entry(); }
  // Renames the staging folder into place. An existing final_dir (with
  // replace_existing) is swapped out atomically (renameat2 RENAME_EXCHANGE)
  // and only then removed, so until this call it is untouched and after it
  // the path holds the complete new output.
  absl::Status Commit();

 private:
  void Abandon();
  std::filesystem::path final_dir_;
  StagingLock lock_;
  bool replace_existing_ = false;
  bool committed_ = false;
};

}  // namespace llmpack

#endif  // LLMPACK_STAGING_H_
