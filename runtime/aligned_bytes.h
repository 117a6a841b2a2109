// Heap bytes aligned for SIMD loads (64) or transparent huge pages (2 MiB).
// std::aligned_alloc requires the size to be a multiple of the alignment,
// so the size is rounded up here, once, for every caller.
//
// Weights and other memory read on every token go in AllocateHugePages: in
// 4 KiB pages a guest under shadow paging re-faults each page after TLB
// flushes (docs/runtime.md, "Huge page cache folios").
//
// Ownership: AlignedBytes owns its memory (freed with std::free).
#ifndef LLMPACK_RUNTIME_ALIGNED_BYTES_H_
#define LLMPACK_RUNTIME_ALIGNED_BYTES_H_

#include <sys/mman.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "llmpack/mapped_file.h"

namespace llmpack::runtime {

using AlignedBytes = std::unique_ptr<uint8_t[], void (*)(void*)>;

// `size` rounded up to a multiple of `alignment` (a power of two), at least
// one alignment.
inline size_t RoundUpToAlignment(size_t size, size_t alignment) {
  return (std::max<size_t>(size, 1) + alignment - 1) / alignment * alignment;
}

// RoundUpToAlignment(size, alignment) bytes; empty when out of memory.
inline AlignedBytes AllocateAligned(size_t size, size_t alignment) {
  return AlignedBytes(static_cast<uint8_t*>(std::aligned_alloc(
                          alignment, RoundUpToAlignment(size, alignment))),
                      &std::free);
}

// RoundUpToAlignment(size, 2 MiB) bytes at a 2 MiB boundary, advised as
// transparent huge pages (MADV_HUGEPAGE, where the system allows them);
// empty when out of memory.
inline AlignedBytes AllocateHugePages(size_t size) {
  constexpr size_t kHuge = MappedFile::kHugePageBytes;
  AlignedBytes bytes = AllocateAligned(size, kHuge);
  if (bytes != nullptr) {
    ::madvise(bytes.get(), RoundUpToAlignment(size, kHuge), MADV_HUGEPAGE);
  }
  return bytes;
}

}  // namespace llmpack::runtime

#endif  // LLMPACK_RUNTIME_ALIGNED_BYTES_H_
