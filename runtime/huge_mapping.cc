#include "runtime/huge_mapping.h"

#include <fcntl.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "llmpack/status_macros.h"
#include "runtime/aligned_bytes.h"

namespace llmpack::runtime {
namespace {

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22  // Linux 5.14; older kernels answer EINVAL
#endif

// Advises huge pages for [data, data + size) and faults every page in.
void Populate(uint8_t* data, size_t size) {
  if (data == nullptr || size == 0) return;
  ::madvise(data, size, MADV_HUGEPAGE);
  // Fails with EFAULT where the file was truncated meanwhile; the caller's
  // CheckUnchanged reports that.
  if (::madvise(data, size, MADV_POPULATE_READ) != 0 && errno == EINVAL) {
    volatile uint8_t sink = 0;  // kernels before 5.14: touch every page
    for (size_t off = 0; off < size; off += 4096) sink = sink + data[off];
  }
}

void Populate(const MappedFile& map) {
  Populate(const_cast<uint8_t*>(map.data()), map.size());
}

// What both mappings do when asked to rebuild: checks that the `want`
// bytes mapped at `start` sit in 2 MiB entries; if not, drops the file's
// small folios (after `unmap()`: a mapped page is not dropped) and calls
// `map()` again, whose faults read the file into 2 MiB folios. `map()`
// returns the new start.
template <typename Map, typename Unmap>
absl::Status RebuildIfSmall(const ReadOnlyFile& file, uint64_t want,
                            const uint8_t* start, Map map, Unmap unmap,
                            HugeMapping* m) {
  m->huge = want == 0 || HugeMappedBytes(start) >= want;
  if (m->huge) return absl::OkStatus();
  unmap();
  ::posix_fadvise(file.fd(), 0, 0, POSIX_FADV_DONTNEED);
  ASSIGN_OR_RETURN(start, map());
  m->rebuilt = true;
  m->huge = HugeMappedBytes(start) >= want;
  return absl::OkStatus();
}

}  // namespace

uint64_t HugeMappedBytes(const void* start) {
  FILE* smaps = std::fopen("/proc/self/smaps", "re");
  if (smaps == nullptr) return 0;
  char header[32];
  std::snprintf(header, sizeof(header), "%lx-",
                static_cast<unsigned long>(reinterpret_cast<uintptr_t>(start)));
  const size_t header_len = std::strlen(header);
  // getline: a header line names the mapped file and may be of any length.
  char* line = nullptr;
  size_t capacity = 0;
  bool inside = false;
  uint64_t bytes = 0;
  while (::getline(&line, &capacity, smaps) > 0) {
    if (!inside) {
      inside = std::strncmp(line, header, header_len) == 0;
      continue;
    }
    // Fields start with a capital ("Rss:"), the next mapping's header
    // with its lowercase hex start address: that ends this mapping.
    if ((line[0] >= '0' && line[0] <= '9') ||
        (line[0] >= 'a' && line[0] <= 'f')) {
      break;
    }
    unsigned long long kb = 0;
    if (std::sscanf(line, "FilePmdMapped: %llu kB", &kb) == 1) {
      bytes = kb * 1024;
      break;
    }
  }
  std::free(line);
  std::fclose(smaps);
  return bytes;
}

absl::StatusOr<HugeMapping> MapInHugeFolios(const ReadOnlyFile& file,
                                            bool rebuild) {
  HugeMapping m;
  auto map = [&]() -> absl::StatusOr<const uint8_t*> {
    ASSIGN_OR_RETURN(m.map, MappedFile::Map(file));
    Populate(m.map);
    return m.map.data();
  };
  ASSIGN_OR_RETURN(const uint8_t* start, map());
  if (!rebuild) return m;  // reading smaps costs ~ms: only when it may pay
  RETURN_IF_ERROR(RebuildIfSmall(
      file, HugeMappableBytes(m.map.size()), start, map,
      [&] { m.map = MappedFile(); }, &m));
  return m;
}

SlotMapping::~SlotMapping() { Release(); }

void SlotMapping::Release() {
  if (base_ != nullptr) ::munmap(base_, capacity_);
  base_ = nullptr;
  capacity_ = 0;
  size_ = 0;
  tail_at_ = SIZE_MAX;
}

absl::Status SlotMapping::Reserve(size_t size,
                                  const std::filesystem::path& path) {
  if (base_ != nullptr && size <= capacity_) return absl::OkStatus();
  Release();
  const size_t capacity = RoundUpToAlignment(size, MappedFile::kHugePageBytes);
  base_ = ReserveHugeAligned(capacity);
  if (base_ == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat(path.string(), ": cannot reserve ", capacity,
                     " bytes of address space: ", std::strerror(errno)));
  }
  capacity_ = capacity;
  return absl::OkStatus();
}

absl::Status SlotMapping::MapHead(const ReadOnlyFile& file, size_t head) {
  if (head == 0) return absl::OkStatus();
  if (::mmap(base_, head, PROT_READ, MAP_PRIVATE | MAP_FIXED, file.fd(), 0) ==
      MAP_FAILED) {
    return absl::InternalError(absl::StrCat(
        file.path().string(), ": cannot mmap: ", std::strerror(errno)));
  }
  Populate(base_, head);
  return absl::OkStatus();
}

absl::StatusOr<HugeMapping> SlotMapping::Load(const ReadOnlyFile& file,
                                              bool rebuild) {
  const size_t size = static_cast<size_t>(file.size());
  RETURN_IF_ERROR(Reserve(size, file.path()));
  const size_t head = HugeMappableBytes(size);
  if (tail_at_ != head) {
    // The anonymous part starts where this file's 2 MiB pieces end; it
    // stays mapped for every later file of the same size.
    // A file of whole pieces that fills the range has no anonymous part.
    if (head < capacity_ &&
        ::mmap(base_ + head, capacity_ - head, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED) {
      return absl::ResourceExhaustedError(
          absl::StrCat(file.path().string(), ": cannot map ", capacity_ - head,
                       " bytes: ", std::strerror(errno)));
    }
    tail_at_ = head;
  }
  HugeMapping m;
  RETURN_IF_ERROR(MapHead(file, head));
  if (rebuild) {
    auto map = [&]() -> absl::StatusOr<const uint8_t*> {
      RETURN_IF_ERROR(MapHead(file, head));
      return base_;
    };
    // The head only; the range stays reserved, as PROT_NONE, meanwhile.
    auto unmap = [&] {
      ::mmap(base_, head, PROT_NONE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
    };
    RETURN_IF_ERROR(RebuildIfSmall(file, head, base_, map, unmap, &m));
  }
  size_ = size;
  RETURN_IF_ERROR(file.ReadAt(head, {base_ + head, size - head}));
  return m;
}

}  // namespace llmpack::runtime
