// Read-only memory map of a whole file. Move-only; the mapping is released in
// the destructor. Concurrent reads of the mapped bytes are safe.
#ifndef LLMPACK_MAPPED_FILE_H_
#define LLMPACK_MAPPED_FILE_H_

#include <cstddef>
#include <cstdint>
#include <filesystem>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "llmpack/file_util.h"

namespace llmpack {

class MappedFile {
 public:
  static constexpr size_t kHugePageBytes = size_t{2} << 20;  // x86-64, arm64
  static absl::StatusOr<MappedFile> Open(const std::filesystem::path& path);
  // Maps the first file.size() bytes of an already open file (the inode the
  // descriptor refers to, even if the path was since replaced). The mapping
  // does not keep `file` open. Files of kHugePageBytes or more are mapped at
  // a multiple of kHugePageBytes, so huge page cache folios can be mapped
  // whole.
  static absl::StatusOr<MappedFile> Map(const ReadOnlyFile& file);

  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  absl::Span<const uint8_t> bytes() const { return {data_, size_}; }
  const std::filesystem::path& path() const { return path_; }

  // Tells the kernel the pages of [offset, offset+length) are no longer
  // needed, so streaming through a large file keeps resident memory bounded.
  void ReleasePages(size_t offset, size_t length) const;

 private:
  void Reset();
  std::filesystem::path path_;
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Reserves `size` bytes of address space (PROT_NONE, nothing committed)
// starting at a multiple of MappedFile::kHugePageBytes, for mappings placed
// there with MAP_FIXED; munmap(p, size) returns it. nullptr (errno set) if
// the address space is exhausted.
uint8_t* ReserveHugeAligned(size_t size);

}  // namespace llmpack

#endif  // LLMPACK_MAPPED_FILE_H_
