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
#include <filesystem>

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
  MappedFile map;        // MapInHugeFolios only
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

// One stream slot's address range, holding one block file at a time: the
// file's whole 2 MiB pieces are mapped from the page cache (MAP_FIXED over
// the previous file's, so only those 2 MiB entries are flushed), and the
// partial last piece is copied into anonymous memory that stays mapped.
//
// Why not map and unmap whole files: unmapping the 4 KiB entries of a
// partial piece flushes the whole TLB (the kernel flushes entry by entry
// only up to 33 of them), and on the shadow-paging guest we measure on that
// also discards the hypervisor's entries of every other mapping, which
// compute then faults in again: int4 decode streamed at 20 tok/s that way
// and at 28-31 this way, against 48-55 resident (docs/runtime.md, "Huge page
// cache folios").
//
// Ownership: owns its address range until destroyed. Thread safety: one
// thread at a time (the loader hands a slot to one thread).
class SlotMapping {
 public:
  SlotMapping() = default;
  ~SlotMapping();
  SlotMapping(const SlotMapping&) = delete;
  SlotMapping& operator=(const SlotMapping&) = delete;

  // Makes room for a file of `size` bytes: a new range, unless the current
  // one is large enough (a new range drops the current file). Errors: no
  // address space (the message names `path`).
  absl::Status Reserve(size_t size, const std::filesystem::path& path);
  // Shows `file` at data() (size() bytes), replacing the previous file,
  // within the reserved range (reserving first if it is too small).
  // `rebuild` as in MapInHugeFolios. Errors: address space, or a short read
  // of the last piece (a file truncated since it was opened).
  absl::StatusOr<HugeMapping> Load(const ReadOnlyFile& file, bool rebuild);
  void Release();  // returns the range

  const uint8_t* data() const { return base_; }
  size_t size() const { return size_; }
  // The reserved range [data(), data() + capacity()), stable until the next
  // Load of a larger file (which may move it) or destruction.
  size_t capacity() const { return capacity_; }

 private:
  absl::Status MapHead(const ReadOnlyFile& file, size_t head);

  uint8_t* base_ = nullptr;
  size_t capacity_ = 0;
  size_t size_ = 0;
  size_t tail_at_ = SIZE_MAX;  // offset where the anonymous part starts
};

}  // namespace llmpack::runtime

#endif  // LLMPACK_RUNTIME_HUGE_MAPPING_H_
