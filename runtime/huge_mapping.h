// Maps a block file so that its weights sit in 2 MiB page cache folios,
// each mapped by one page-middle-directory entry.
//
// Why: on the virtual machines we measure on, the first user access to each
// freshly mapped 4 KiB page costs ~2 us (the hypervisor fills its own table
// for it), so computing straight from a 4 KiB-mapped file that is mapped
// anew for every token ran at ~2 GB/s, where a 2 MiB mapping runs at
// ~20 GB/s; and read() copies out of 2 MiB folios at ~17 GB/s against ~6
// from 4 KiB ones. Which folios the page cache holds depends on how the file
// was read: faults in a MADV_HUGEPAGE mapping read it in 2 MiB folios, a
// read() of it usually does not (docs/runtime.md, "Huge page cache folios").
//
// Linux only; elsewhere the mapping is plain and nothing is rebuilt.
// Thread safety: functions may be called from any thread.
#ifndef LLMPACK_RUNTIME_HUGE_MAPPING_H_
#define LLMPACK_RUNTIME_HUGE_MAPPING_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/statusor.h"
#include "llmpack/file_util.h"
#include "llmpack/mapped_file.h"

namespace llmpack::runtime {

// Bytes of the mapping that starts at `start` which are mapped by 2 MiB
// entries ("FilePmdMapped" in /proc/self/smaps); 0 when unknown.
uint64_t HugeMappedBytes(const void* start);

// The most of a `size`-byte file mapped at a 2 MiB boundary that 2 MiB
// entries can cover: the whole 2 MiB pieces.
inline uint64_t HugeMappableBytes(size_t size) {
  return size / MappedFile::kHugePageBytes * MappedFile::kHugePageBytes;
}

struct HugeMapping {
  MappedFile map;
  bool rebuilt = false;  // the file's page cache was dropped and read again
  // Checked (only when `rebuild` was asked) and every whole 2 MiB piece is
  // mapped by one entry.
  bool huge = false;
};

// Maps `file`, asks for huge pages (MADV_HUGEPAGE) and faults every page in
// (MADV_POPULATE_READ, so a cold file is read now, not during compute). If
// `rebuild` is set, checks the mapping (smaps: ~ms), and if the file's cached
// pages turn out to be small folios,
// drops them (posix_fadvise DONTNEED; pages mapped by another process stay)
// and faults the file in again, which reads it from disk into 2 MiB folios.
// Errors: the file cannot be mapped.
absl::StatusOr<HugeMapping> MapInHugeFolios(const ReadOnlyFile& file,
                                            bool rebuild);

}  // namespace llmpack::runtime

#endif  // LLMPACK_RUNTIME_HUGE_MAPPING_H_
