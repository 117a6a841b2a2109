// In-process hardware probes: what this machine can do right now, measured
// with the same threads the forward pass uses, so that a speed figure can be
// reported as a ratio to it ("decode reads weights at 0.7 of the memory read
// bandwidth") and mean the same on a busy shared machine as on an idle one.
// Each probe runs for a fraction of a second.
//
// - MeasureReadBandwidth: all threads sum a buffer far larger than any
//   last-level cache (bytes/s of memory reads).
// - MeasureComputePeaks: register-only multiply-add loops on every thread
//   for f32 FMA, bf16 dot products and int8 dot products, with the best
//   instructions this CPU has (Highway's runtime dispatch; AVX-512 VNNI and
//   AVX-512 BF16 on x86 CPUs that have them).
// - MeasureFileRead: sequential reads of files, cold (each file evicted from
//   the page cache first with posix_fadvise(POSIX_FADV_DONTNEED)) and warm.
//
// Every figure is the median over the probe's passes, so one descheduled
// pass does not decide it while sustained contention still shows.
// Ownership: the probes allocate and free their own buffers.
// Thread safety: a probe runs its work on `pool`, which must not be used by
// another thread meanwhile; EvictFromPageCache may be called from any thread.
#ifndef LLMPACK_RUNTIME_PROBES_H_
#define LLMPACK_RUNTIME_PROBES_H_

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "runtime/thread_pool.h"

namespace llmpack::runtime {

// Default buffer of the bandwidth probe: well beyond the last-level cache of
// current server CPUs (up to 96 MiB per CCD with 3D V-cache).
inline constexpr uint64_t kBandwidthProbeBytes = uint64_t{256} << 20;

// Memory read bandwidth in bytes/s with all of `pool`'s threads, over a
// buffer of `buffer_bytes` (rounded down to whole MiB), for about
// `seconds`. The buffer sits in 2 MiB pages, as the weights it is compared
// with do (aligned_bytes.h): in 4 KiB pages it read 13-20% slower and
// scattered ~10% between runs on our shadow-paging guest.
absl::StatusOr<double> MeasureReadBandwidth(ThreadPool& pool,
                                            uint64_t buffer_bytes,
                                            double seconds);

struct ComputePeaks {
  // Floating-point operations per second (a multiply-add counts 2).
  double f32_fma_flops = 0;
  double bf16_dot_flops = 0;  // bf16 inputs, f32 accumulation
  // Integer operations per second of 8-bit dot products into int32 (a
  // multiply-add counts 2).
  double int8_dot_ops = 0;
  // The instructions measured, e.g. "highway:AVX3", "avx512_bf16",
  // "avx512_vnni".
  std::string f32_isa, bf16_isa, int8_isa;
};

// Each peak takes about seconds / 3 on all of `pool`'s threads.
ComputePeaks MeasureComputePeaks(ThreadPool& pool, double seconds);

struct FileReadThroughput {
  double cold_bytes_per_second = 0;
  double warm_bytes_per_second = 0;
  uint64_t bytes = 0;  // read per pass (cold and warm read the same bytes)
};

// Reads `files` front to back in 8 MiB pieces on the calling thread: first
// cold (every file evicted just before), then warm (the same bytes again).
// Stops after about `seconds` per pass, so a large package is sampled from
// its first files. Errors name the file that could not be read.
absl::StatusOr<FileReadThroughput> MeasureFileRead(
    const std::vector<std::filesystem::path>& files, double seconds);

// Drops the files' clean pages from the page cache (posix_fadvise
// POSIX_FADV_DONTNEED), so the next reads come from storage. Pages a process
// has memory-mapped stay resident.
absl::Status EvictFromPageCache(
    const std::vector<std::filesystem::path>& files);

}  // namespace llmpack::runtime

#endif  // LLMPACK_RUNTIME_PROBES_H_
