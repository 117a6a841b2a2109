#include "runtime/huge_mapping.h"

#include <fcntl.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "llmpack/status_macros.h"

namespace llmpack::runtime {
namespace {

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22  // Linux 5.14; older kernels answer EINVAL
#endif

// Advises huge pages and faults every page of `map` in.
void Populate(const MappedFile& map) {
  uint8_t* data = const_cast<uint8_t*>(map.data());
  if (data == nullptr) return;
  ::madvise(data, map.size(), MADV_HUGEPAGE);
  // Fails with EFAULT where the file was truncated meanwhile; the caller's
  // CheckUnchanged reports that.
  if (::madvise(data, map.size(), MADV_POPULATE_READ) != 0 && errno == EINVAL) {
    volatile uint8_t sink = 0;  // kernels before 5.14: touch every page
    for (size_t off = 0; off < map.size(); off += 4096) sink = sink + data[off];
  }
}

}  // namespace

uint64_t HugeMappedBytes(const void* start) {
  FILE* smaps = std::fopen("/proc/self/smaps", "re");
  if (smaps == nullptr) return 0;
  char header[32];
  std::snprintf(header, sizeof(header), "%lx-",
                static_cast<unsigned long>(reinterpret_cast<uintptr_t>(start)));
  const size_t header_len = std::strlen(header);
  char line[512];
  bool inside = false;
  uint64_t bytes = 0;
  while (std::fgets(line, sizeof(line), smaps) != nullptr) {
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
  std::fclose(smaps);
  return bytes;
}

absl::StatusOr<HugeMapping> MapInHugeFolios(const ReadOnlyFile& file,
                                            bool rebuild) {
  HugeMapping m;
  ASSIGN_OR_RETURN(m.map, MappedFile::Map(file));
  Populate(m.map);
  if (!rebuild) return m;  // reading smaps costs ~ms: only when it may pay
  const uint64_t want = HugeMappableBytes(m.map.size());
  m.huge = HugeMappedBytes(m.map.data()) >= want;
  if (m.huge) return m;
  // Small folios: drop the file's pages (ours must be unmapped first, a
  // mapped page is not dropped) and read it again through the mapping.
  m.map = MappedFile();
  ::posix_fadvise(file.fd(), 0, 0, POSIX_FADV_DONTNEED);
  ASSIGN_OR_RETURN(m.map, MappedFile::Map(file));
  Populate(m.map);
  m.rebuilt = true;
  m.huge = HugeMappedBytes(m.map.data()) >= want;
  return m;
}

}  // namespace llmpack::runtime
