#include "llmpack/mapped_file.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "llmpack/status_macros.h"

namespace llmpack {

uint8_t* ReserveHugeAligned(size_t size) {
  constexpr size_t kHuge = MappedFile::kHugePageBytes;
  void* reserved = ::mmap(nullptr, size + kHuge, PROT_NONE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (reserved == MAP_FAILED) return nullptr;
  // Keep the aligned [aligned, aligned + size) (in whole pages) and return
  // the rest on both sides.
  const uintptr_t begin = reinterpret_cast<uintptr_t>(reserved);
  const uintptr_t aligned = (begin + kHuge - 1) & ~uintptr_t{kHuge - 1};
  const uintptr_t end = begin + size + kHuge;
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t used_end = (aligned + size + page - 1) & ~(page - 1);
  if (aligned > begin) ::munmap(reserved, aligned - begin);
  if (end > used_end)
    ::munmap(reinterpret_cast<void*>(used_end), end - used_end);
  return reinterpret_cast<uint8_t*>(aligned);
}

absl::StatusOr<MappedFile> MappedFile::Open(const std::filesystem::path& path) {
  ASSIGN_OR_RETURN(ReadOnlyFile file, ReadOnlyFile::Open(path));
  return Map(file);
}

absl::StatusOr<MappedFile> MappedFile::Map(const ReadOnlyFile& file) {
  MappedFile map;
  map.path_ = file.path();
  map.size_ = static_cast<size_t>(file.size());
  if (map.size_ == 0) return map;
  auto failed = [&](const char* what) {
    return absl::InternalError(absl::StrCat(file.path().string(), ": cannot ",
                                            what, ": ", std::strerror(errno)));
  };
  // Files of 2 MiB or more start at a 2 MiB boundary, so that page cache
  // folios of 2 MiB can be mapped whole (one PMD entry instead of 512 page
  // table entries). Some filesystems align file mappings themselves, others
  // do not: reserve an aligned range, then map the file over it.
  uint8_t* where = nullptr;
  if (map.size_ >= kHugePageBytes) {
    where = ReserveHugeAligned(map.size_);
    if (where == nullptr) return failed("reserve address space");
  }
  void* p =
      ::mmap(where, map.size_, PROT_READ,
             MAP_PRIVATE | (where != nullptr ? MAP_FIXED : 0), file.fd(), 0);
  if (p == MAP_FAILED) {
    const int err = errno;
    if (where != nullptr) ::munmap(where, map.size_);
    errno = err;
    return failed("mmap");
  }
  map.data_ = static_cast<uint8_t*>(p);
  return map;
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : path_(std::move(other.path_)),
      data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)) {}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    Reset();
    path_ = std::move(other.path_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

MappedFile::~MappedFile() { Reset(); }

void MappedFile::Reset() {
  if (data_ != nullptr) ::munmap(data_, size_);
  data_ = nullptr;
  size_ = 0;
}

void MappedFile::ReleasePages(size_t offset, size_t length) const {
  if (data_ == nullptr || offset >= size_) return;
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  const size_t begin = (offset + page - 1) / page * page;  // whole pages only
  const size_t end = std::min(size_, offset + length) / page * page;
  if (end > begin) ::madvise(data_ + begin, end - begin, MADV_DONTNEED);
}

}  // namespace llmpack
