// Small file helpers: whole-file reads and positioned reads with exact-size
// checks. Writing (WriteStringToFile, StagingDirectory) is in staging.h,
// included here for the many callers that read and write.
#ifndef LLMPACK_FILE_UTIL_H_
#define LLMPACK_FILE_UTIL_H_

#include <cstdint>
#include <filesystem>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "llmpack/staging.h"

namespace llmpack {

absl::StatusOr<std::string> ReadFileToString(const std::filesystem::path& path);

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

// True when `inner` is `outer` or lies inside it (after resolving links).
bool IsSameOrInside(const std::filesystem::path& inner,
                    const std::filesystem::path& outer);

}  // namespace llmpack

#endif  // LLMPACK_FILE_UTIL_H_
