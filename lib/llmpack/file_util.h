// Small file helpers: whole-file reads, positioned reads with exact-size
// checks, and a staging directory that makes package output all-or-nothing.
#ifndef LLMPACK_FILE_UTIL_H_
#define LLMPACK_FILE_UTIL_H_

#include <cstdint>
#include <filesystem>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace llmpack {

absl::StatusOr<std::string> ReadFileToString(const std::filesystem::path& path);
// Writes via a temporary file and rename, so readers never see half a file.
absl::Status WriteStringToFile(const std::filesystem::path& path,
                               std::string_view contents);

// An open read-only file descriptor with bounds-checked positioned reads.
// Move-only. ReadAt is safe to call from several threads at once.
class ReadOnlyFile {
 public:
  static absl::StatusOr<ReadOnlyFile> Open(const std::filesystem::path& path);
  ReadOnlyFile() = default;
  ReadOnlyFile(ReadOnlyFile&& other) noexcept;
  ReadOnlyFile& operator=(ReadOnlyFile&& other) noexcept;
  ReadOnlyFile(const ReadOnlyFile&) = delete;
  ReadOnlyFile& operator=(const ReadOnlyFile&) = delete;
  ~ReadOnlyFile();

  // Reads exactly dst.size() bytes at offset; fails (naming the file) if the
  // range runs past the end of the file.
  absl::Status ReadAt(uint64_t offset, absl::Span<uint8_t> dst) const;
  uint64_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }
  int fd() const { return fd_; }

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

// A temporary directory beside `final_dir` that becomes `final_dir` only on
// Commit(); destroyed with its contents otherwise. Not thread-safe.
class StagingDirectory {
 public:
  // Fails if final_dir exists and `replace_existing` is false.
  static absl::StatusOr<StagingDirectory> Create(
      const std::filesystem::path& final_dir, bool replace_existing);
  StagingDirectory() = default;
  StagingDirectory(StagingDirectory&& other) noexcept;
  StagingDirectory& operator=(StagingDirectory&& other) noexcept;
  ~StagingDirectory();

  const std::filesystem::path& path() const { return temp_dir_; }
  // Renames the staging directory into place (replacing an old package).
  absl::Status Commit();

 private:
  void Abandon();
  std::filesystem::path final_dir_;
  std::filesystem::path temp_dir_;
  bool replace_existing_ = false;
  bool committed_ = false;
};

// True when `inner` is `outer` or lies inside it (after resolving links).
bool IsSameOrInside(const std::filesystem::path& inner,
                    const std::filesystem::path& outer);

}  // namespace llmpack

#endif  // LLMPACK_FILE_UTIL_H_
