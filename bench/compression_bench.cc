// compression_bench: would zstd-compressed block files make streaming
// faster? (issue 10 item 9: measure, then decide.)
//
// For each package given: every tensor of the block files (and, separately,
// embedding.bin and lm.bin) is compressed with zstd at levels 1, 3 and 9,
// whole ("per tensor") and in independent 1 MiB chunks ("per chunk", which
// keeps tensors addressable and lets a reader decompress while it reads).
// It reports the size ratio (compressed / raw), single-thread decompression
// speed (GB/s of output, the fastest of three passes over each tensor), and the
// file-read probe over the same block files (cold: after
// posix_fadvise(DONTNEED) on each; warm: read again). From these it derives the
// time to bring one token's blocks into memory:
//   plain:      bytes / read_speed
//   compressed: max(bytes * ratio / read_speed, bytes / decompress_speed)
// (reads and decompression of successive chunks overlapped on the prefetch
// thread: the optimistic case) and, given the compute time per token of a
// resident run (--compute-ms), the decode speed each would allow:
// 1000 / max(compute_ms, load_ms).
//
// Usage: compression_bench [--compute-ms MS] [--max-blocks N] PACKAGE...
// --max-blocks N measures the first N block files (default: all); the
// per-token figures scale them to all blocks. Evicting the page cache only
// drops pages nobody else maps or dirtied; run it on a private copy of a
// package another process is using.
#include <fcntl.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "llmpack/manifest.h"
#include "llmpack/package_layout.h"
#include "llmpack/tensor_file.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr size_t kChunk = size_t{1} << 20;
constexpr int kLevels[] = {1, 3, 9};

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

struct Tally {
  uint64_t raw = 0, packed = 0;
  double decompress_seconds = 0;
  double ratio() const { return raw == 0 ? 1 : double(packed) / double(raw); }
  double gbps() const { return raw / decompress_seconds / 1e9; }
};

// Compresses `data` as one frame (chunk == 0) or in independent chunks,
// adds the sizes to `t`, then times decompressing every frame back.
void Measure(const std::vector<uint8_t>& data, int level, size_t chunk,
             ZSTD_CCtx* cctx, ZSTD_DCtx* dctx, Tally* t) {
  const size_t step = chunk == 0 ? data.size() : chunk;
  std::vector<std::vector<uint8_t>> frames;
  for (size_t off = 0; off < data.size(); off += step) {
    const size_t n = std::min(step, data.size() - off);
    std::vector<uint8_t> frame(ZSTD_compressBound(n));
    const size_t z = ZSTD_compressCCtx(cctx, frame.data(), frame.size(),
                                       data.data() + off, n, level);
    if (ZSTD_isError(z)) {
      std::fprintf(stderr, "zstd: %s\n", ZSTD_getErrorName(z));
      std::exit(1);
    }
    frame.resize(z);
    t->packed += z;
    frames.push_back(std::move(frame));
  }
  t->raw += data.size();
  // The fastest of three passes: on a shared machine the slower ones
  // measure the other processes.
  std::vector<uint8_t> out(step);
  double best = 0;
  for (int pass = 0; pass < 3; ++pass) {
    const auto start = Clock::now();
    for (const auto& frame : frames) {
      const size_t n = ZSTD_decompressDCtx(dctx, out.data(), out.size(),
                                           frame.data(), frame.size());
      if (ZSTD_isError(n)) {
        std::fprintf(stderr, "zstd: %s\n", ZSTD_getErrorName(n));
        std::exit(1);
      }
    }
    const double seconds = Seconds(start);
    best = pass == 0 ? seconds : std::min(best, seconds);
  }
  t->decompress_seconds += best;
}

// Reads the files sequentially in 8 MiB preads; returns GB/s.
double ReadProbe(const std::vector<fs::path>& files, bool evict_first) {
  std::vector<uint8_t> buf(8 << 20);
  uint64_t bytes = 0;
  if (evict_first) {
    for (const fs::path& f : files) {
      const int fd = ::open(f.c_str(), O_RDONLY);
      ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
      ::close(fd);
    }
  }
  const auto start = Clock::now();
  for (const fs::path& f : files) {
    const int fd = ::open(f.c_str(), O_RDONLY);
    ssize_t n;
    while ((n = ::read(fd, buf.data(), buf.size())) > 0) bytes += n;
    ::close(fd);
  }
  return bytes / Seconds(start) / 1e9;
}

struct FileGroup {
  const char* name;
  std::vector<fs::path> files;
  uint64_t bytes_per_token = 0;  // blocks only: all blocks' data
};

void Report(const fs::path& dir, int max_blocks, double compute_ms) {
  auto manifest = llmpack::ReadManifest(dir);
  if (!manifest.ok()) {
    std::fprintf(stderr, "%s\n",
                 std::string(manifest.status().message()).c_str());
    std::exit(1);
  }
  const int64_t layers = manifest->config.num_layers;
  FileGroup blocks{"blocks", {}},
      embedding{"embedding", {dir / llmpack::kEmbeddingFile}},
      lm{"lm", {dir / llmpack::kLmFile}};
  for (int64_t l = 0; l < layers; ++l) {
    const fs::path p = dir / llmpack::BlockFileName(l);
    blocks.bytes_per_token += fs::file_size(p);
    if (max_blocks <= 0 || l < max_blocks) blocks.files.push_back(p);
  }
  std::printf("== %s (%lld blocks)\n", dir.c_str(),
              static_cast<long long>(layers));

  const double cold = ReadProbe(blocks.files, /*evict_first=*/true);
  const double warm = ReadProbe(blocks.files, /*evict_first=*/false);
  std::printf("file-read probe (blocks): cold %.3f GB/s, warm %.3f GB/s\n",
              cold, warm);
  const double mib_per_token = blocks.bytes_per_token / 1048576.0;
  const double plain_cold_ms = blocks.bytes_per_token / (cold * 1e9) * 1e3;
  const double plain_warm_ms = blocks.bytes_per_token / (warm * 1e9) * 1e3;
  std::printf(
      "block bytes per token: %.1f MiB; plain load %.1f ms cold, "
      "%.1f ms warm\n",
      mib_per_token, plain_cold_ms, plain_warm_ms);
  if (compute_ms > 0) {
    std::printf(
        "compute %.1f ms/token: plain decode bound %.2f tok/s cold, "
        "%.2f warm\n",
        compute_ms, 1e3 / std::max(compute_ms, plain_cold_ms),
        1e3 / std::max(compute_ms, plain_warm_ms));
  }
  std::printf("%-10s %-6s %5s %7s %9s %10s %10s%s\n", "files", "mode", "level",
              "ratio", "dec GB/s", "cold ms", "warm ms",
              compute_ms > 0 ? "  tok/s cold  tok/s warm" : "");

  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_DCtx* dctx = ZSTD_createDCtx();
  for (FileGroup* group : {&blocks, &embedding, &lm}) {
    for (size_t chunk : {size_t{0}, kChunk}) {
      for (int level : kLevels) {
        Tally t;
        for (const fs::path& p : group->files) {
          auto reader = llmpack::TensorFileReader::Open(p);
          if (!reader.ok()) {
            std::fprintf(stderr, "%s\n",
                         std::string(reader.status().message()).c_str());
            std::exit(1);
          }
          for (const llmpack::TensorInfo& info : reader->tensors()) {
            std::vector<uint8_t> data(info.size_bytes);
            if (!reader->ReadTensor(info, absl::MakeSpan(data), false).ok()) {
              std::exit(1);
            }
            Measure(data, level, chunk, cctx, dctx, &t);
          }
        }
        std::printf("%-10s %-6s %5d %7.3f %9.2f", group->name,
                    chunk == 0 ? "tensor" : "1MiB", level, t.ratio(), t.gbps());
        if (group != &blocks) {
          std::printf("\n");
          continue;
        }
        const double bytes = blocks.bytes_per_token;
        const double dec_ms = bytes / (t.gbps() * 1e9) * 1e3;
        const double cold_ms =
            std::max(bytes * t.ratio() / (cold * 1e9) * 1e3, dec_ms);
        const double warm_ms =
            std::max(bytes * t.ratio() / (warm * 1e9) * 1e3, dec_ms);
        std::printf(" %10.1f %10.1f", cold_ms, warm_ms);
        if (compute_ms > 0) {
          std::printf("  %10.2f  %10.2f", 1e3 / std::max(compute_ms, cold_ms),
                      1e3 / std::max(compute_ms, warm_ms));
        }
        std::printf("\n");
      }
    }
  }
  ZSTD_freeCCtx(cctx);
  ZSTD_freeDCtx(dctx);
}

}  // namespace

int main(int argc, char** argv) {
  double compute_ms = 0;
  int max_blocks = 0;
  std::vector<fs::path> packages;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--compute-ms" && i + 1 < argc) {
      compute_ms = std::atof(argv[++i]);
    } else if (arg == "--max-blocks" && i + 1 < argc) {
      max_blocks = std::atoi(argv[++i]);
    } else if (!arg.empty() && arg[0] != '-') {
      packages.push_back(arg);
    } else {
      std::fprintf(stderr,
                   "usage: compression_bench [--compute-ms MS] "
                   "[--max-blocks N] PACKAGE...\n");
      return 2;
    }
  }
  if (packages.empty()) {
    std::fprintf(stderr, "compression_bench: no package given\n");
    return 2;
  }
  for (const fs::path& p : packages) Report(p, max_blocks, compute_ms);
  return 0;
}
