// The probes of probes.h. The SIMD loops are compiled once per Highway
// target and dispatched to the best one this CPU supports; the x86
// dot-product extensions come from probes_x86.cc when the CPU has them.
#include "runtime/probes.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "runtime/aligned_bytes.h"
#include "runtime/clock.h"
#include "runtime/probe_loops.h"

// Highway re-includes this file once per target: foreach_target.h must come
// before highway.h.
// clang-format off
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "runtime/probes.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
// clang-format on

HWY_BEFORE_NAMESPACE();
namespace llmpack::runtime {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// XOR of n words (n a multiple of 4 vectors): four independent accumulators
// so the loads, not the XORs, set the pace.
uint64_t XorWords(const uint64_t* p, size_t n) {
  const hn::ScalableTag<uint64_t> d;
  const size_t lanes = hn::Lanes(d);
  auto a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
  for (size_t i = 0; i + 4 * lanes <= n; i += 4 * lanes) {
    a0 = hn::Xor(a0, hn::LoadU(d, p + i));
    a1 = hn::Xor(a1, hn::LoadU(d, p + i + lanes));
    a2 = hn::Xor(a2, hn::LoadU(d, p + i + 2 * lanes));
    a3 = hn::Xor(a3, hn::LoadU(d, p + i + 3 * lanes));
  }
  return hn::GetLane(hn::Xor(hn::Xor(a0, a1), hn::Xor(a2, a3)));
}

// Ten independent chains cover the multiply-add latency of every target
// (4-5 cycles at two per cycle) within the 16 registers of AVX2.
constexpr int kChains = 10;

double F32Loop(int64_t iters, double* sink) {
  const hn::ScalableTag<float> d;
  const auto m = hn::Set(d, 0.999999f);
  const auto a = hn::Set(d, 1e-7f);
  // Named accumulators, not an array: SVE vectors cannot be array elements.
  static_assert(kChains == 10, "F32Loop keeps ten named chains");
  auto c0 = hn::Set(d, 1.0f), c1 = c0, c2 = c0, c3 = c0, c4 = c0;
  auto c5 = c0, c6 = c0, c7 = c0, c8 = c0, c9 = c0;
  // Floating-point chains cannot be reassociated, so none is folded away.
  for (int64_t i = 0; i < iters; ++i) {
    c0 = hn::MulAdd(c0, m, a);
    c1 = hn::MulAdd(c1, m, a);
    c2 = hn::MulAdd(c2, m, a);
    c3 = hn::MulAdd(c3, m, a);
    c4 = hn::MulAdd(c4, m, a);
    c5 = hn::MulAdd(c5, m, a);
    c6 = hn::MulAdd(c6, m, a);
    c7 = hn::MulAdd(c7, m, a);
    c8 = hn::MulAdd(c8, m, a);
    c9 = hn::MulAdd(c9, m, a);
  }
  const auto total = hn::Add(
      hn::Add(hn::Add(hn::Add(c0, c1), hn::Add(c2, c3)), hn::Add(c4, c5)),
      hn::Add(hn::Add(c6, c7), hn::Add(c8, c9)));
  *sink += hn::GetLane(total);
  return static_cast<double>(iters) * kChains * hn::Lanes(d) * 2;
}

#if HWY_TARGET == HWY_SCALAR
// The scalar target has no bf16 or int16 pair ops: the same arithmetic, one
// product at a time (bf16 -> f32 is a shift of the bits).
double Bf16Loop(int64_t iters, double* sink) {
  const uint32_t a_bits = 0x3A83u << 16;  // bf16(1e-3)
  const uint32_t b_bits = 0x3F00u << 16;  // bf16(0.5)
  float a, b;
  std::memcpy(&a, &a_bits, 4);
  std::memcpy(&b, &b_bits, 4);
  float acc[kChains] = {};
  for (int64_t i = 0; i < iters; ++i) {
    for (float& v : acc) v = std::fma(a, b, v);
  }
  for (float v : acc) *sink += v;
  return static_cast<double>(iters) * kChains * 2;
}

double Int8Loop(int64_t iters, double* sink) {
  const int16_t a = 1, b = 1;
  int32_t acc[kChains] = {};
  for (int64_t i = 0; i < iters; ++i) {
    for (int32_t& v : acc) v += int32_t{a} * b;
#if defined(__GNUC__)
    // Integer sums could be folded into one multiplication.
    __asm__ volatile("" : "+r"(acc[0]));
#endif
  }
  for (int32_t v : acc) *sink += v;
  return static_cast<double>(iters) * kChains * 2;
}
#else
// Ten chains (five pairs) of ReorderWidenMulAccumulate of `a` and `b` into
// the wider lanes of `dw`; returns the products made (two per wide lane).
// Named accumulators, not arrays: SVE vectors cannot be array elements.
template <class DW, class VN>
double WidenMulLoop(DW dw, VN a, VN b, int64_t iters, double* sink) {
  static_assert(kChains == 10, "five pairs of chains");
  auto s0 = hn::Zero(dw), s1 = s0, s2 = s0, s3 = s0, s4 = s0;
  auto t0 = s0, t1 = s0, t2 = s0, t3 = s0, t4 = s0;
  for (int64_t i = 0; i < iters; ++i) {
    s0 = hn::ReorderWidenMulAccumulate(dw, a, b, s0, t0);
    s1 = hn::ReorderWidenMulAccumulate(dw, a, b, s1, t1);
    s2 = hn::ReorderWidenMulAccumulate(dw, a, b, s2, t2);
    s3 = hn::ReorderWidenMulAccumulate(dw, a, b, s3, t3);
    s4 = hn::ReorderWidenMulAccumulate(dw, a, b, s4, t4);
  }
  const auto total = hn::Add(
      hn::Add(hn::Add(hn::Add(s0, t0), hn::Add(s1, t1)), hn::Add(s2, t2)),
      hn::Add(hn::Add(s3, t3), hn::Add(s4, t4)));
  *sink += hn::GetLane(total);
  return static_cast<double>(iters) * (kChains / 2) * hn::Lanes(dw) * 2 * 2;
}

// bf16 pairs widened and multiplied into f32: what a bf16 dot product costs
// with Highway's portable ops.
double Bf16Loop(int64_t iters, double* sink) {
  const hn::ScalableTag<float> df;
  const hn::Repartition<hwy::bfloat16_t, decltype(df)> dbf;
  const auto a =
      hn::ReorderDemote2To(dbf, hn::Set(df, 1e-3f), hn::Set(df, 1e-3f));
  const auto b =
      hn::ReorderDemote2To(dbf, hn::Set(df, 0.5f), hn::Set(df, 0.5f));
  return WidenMulLoop(df, a, b, iters, sink);
}

// Without a byte dot-product instruction an int8 dot product widens its
// codes to int16 and multiplies pairs into int32 (pmaddwd and its kin):
// measured here on int16 lanes, each one int8 product. Products of 1 keep
// the int32 sums far from overflow.
double Int8Loop(int64_t iters, double* sink) {
  const hn::ScalableTag<int32_t> d32;
  const hn::Repartition<int16_t, decltype(d32)> d16;
  const auto one = hn::Set(d16, int16_t{1});
  return WidenMulLoop(d32, one, one, iters, sink);
}
#endif  // HWY_TARGET == HWY_SCALAR

const char* ProbeTargetName() { return hwy::TargetName(HWY_TARGET); }

}  // namespace HWY_NAMESPACE
}  // namespace llmpack::runtime
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace llmpack::runtime {

HWY_EXPORT(XorWords);
HWY_EXPORT(F32Loop);
HWY_EXPORT(Bf16Loop);
HWY_EXPORT(Int8Loop);
HWY_EXPORT(ProbeTargetName);

namespace {

double DispatchF32(int64_t iters, double* sink) {
  return HWY_DYNAMIC_DISPATCH(F32Loop)(iters, sink);
}
double DispatchBf16(int64_t iters, double* sink) {
  return HWY_DYNAMIC_DISPATCH(Bf16Loop)(iters, sink);
}
double DispatchInt8(int64_t iters, double* sink) {
  return HWY_DYNAMIC_DISPATCH(Int8Loop)(iters, sink);
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Repeats `pass` (which returns the work it did) for about `seconds`, at
// least three times, and returns the median of work per second.
template <typename Pass>
double MedianRate(double seconds, Pass pass) {
  std::vector<double> rates;
  const int64_t deadline = NowNs() + static_cast<int64_t>(seconds * 1e9);
  while (rates.size() < 3 || NowNs() < deadline) {
    const int64_t t0 = NowNs();
    const double work = pass();
    const int64_t ns = std::max<int64_t>(NowNs() - t0, 1);
    rates.push_back(work * 1e9 / static_cast<double>(ns));
  }
  return Median(std::move(rates));
}

// Peak of one loop on every thread: chunks of about 5 ms, two per thread per
// pass, handed out dynamically so a descheduled thread is covered by others.
double LoopPeak(ThreadPool& pool, ProbeLoopFn loop, double seconds) {
  double sink = 0;
  int64_t iters = 1024;
  // Calibrate the chunk length on the calling thread.
  for (;;) {
    const int64_t t0 = NowNs();
    loop(iters, &sink);
    const int64_t ns = NowNs() - t0;
    if (ns >= 2'000'000 || iters >= (int64_t{1} << 26)) {
      iters =
          std::max<int64_t>(1, iters * 5'000'000 / std::max<int64_t>(ns, 1));
      break;
    }
    iters *= 4;
  }
  const int64_t chunks = 2 * pool.num_threads();
  std::vector<double> sinks(static_cast<size_t>(chunks), 0.0);
  const double rate = MedianRate(seconds, [&] {
    std::atomic<int64_t> done_ops{0};
    double ops_per_chunk = 0;
    pool.ParallelFor(chunks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) {
        const double ops = loop(iters, &sinks[static_cast<size_t>(c)]);
        if (c == 0) ops_per_chunk = ops;
        done_ops.fetch_add(1, std::memory_order_relaxed);
      }
    });
    return ops_per_chunk * static_cast<double>(done_ops.load());
  });
  // The sinks are read so the loops' results are live.
  for (double s : sinks) sink += s;
  if (sink == -1.0) std::abort();
  return rate;
}

// Closes a file descriptor when it goes out of scope.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

absl::Status OpenForRead(const std::filesystem::path& file, Fd* fd) {
  fd->fd = open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd->fd < 0) {
    return absl::NotFoundError(absl::StrCat(
        file.string(), ": cannot open for reading: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

// Reads the files front to back until `budget_bytes` are read or the
// deadline passes; returns the bytes read.
absl::StatusOr<uint64_t> ReadFiles(
    const std::vector<std::filesystem::path>& files, uint64_t budget_bytes,
    int64_t deadline_ns, std::vector<uint8_t>& buffer) {
  uint64_t total = 0;
  for (const std::filesystem::path& file : files) {
    Fd fd;
    if (absl::Status s = OpenForRead(file, &fd); !s.ok()) return s;
    for (;;) {
      if (total >= budget_bytes || NowNs() >= deadline_ns) return total;
      const size_t want = static_cast<size_t>(
          std::min<uint64_t>(buffer.size(), budget_bytes - total));
      const ssize_t got = read(fd.fd, buffer.data(), want);
      if (got < 0) {
        if (errno == EINTR) continue;
        return absl::DataLossError(absl::StrCat(
            file.string(), ": read failed: ", std::strerror(errno)));
      }
      if (got == 0) break;
      total += static_cast<uint64_t>(got);
    }
  }
  return total;
}

}  // namespace

absl::StatusOr<double> MeasureReadBandwidth(ThreadPool& pool,
                                            uint64_t buffer_bytes,
                                            double seconds) {
  constexpr uint64_t kChunkBytes = uint64_t{1} << 20;
  const uint64_t chunks = buffer_bytes / kChunkBytes;
  if (chunks == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("bandwidth probe: buffer of ", buffer_bytes,
                     " bytes, expected at least ", kChunkBytes));
  }
  const size_t words_per_chunk = kChunkBytes / sizeof(uint64_t);
  const AlignedBytes bytes = AllocateHugePages(chunks * kChunkBytes);
  uint64_t* const buffer = reinterpret_cast<uint64_t*>(bytes.get());
  if (buffer == nullptr) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "bandwidth probe: cannot allocate ", chunks * kChunkBytes, " bytes"));
  }
  const int64_t n = static_cast<int64_t>(chunks);
  // Touched by the pool's threads, so the pages are resident before timing.
  pool.ParallelFor(n, 1, [&](int64_t begin, int64_t end) {
    std::memset(buffer + begin * words_per_chunk, 1,
                static_cast<size_t>(end - begin) * kChunkBytes);
  });
  std::vector<uint64_t> partial(chunks, 0);
  auto pass = [&] {
    pool.ParallelFor(n, 1, [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) {
        partial[static_cast<size_t>(c)] = HWY_DYNAMIC_DISPATCH(XorWords)(
            buffer + c * words_per_chunk, words_per_chunk);
      }
    });
    return static_cast<double>(chunks * kChunkBytes);
  };
  pass();  // warm-up: page tables and thread wake-up
  const double rate = MedianRate(seconds, pass);
  uint64_t x = 0;
  for (uint64_t p : partial) x ^= p;
  if (x == 1) std::abort();  // never: keeps the sums live
  return rate;
}

ComputePeaks MeasureComputePeaks(ThreadPool& pool, double seconds) {
  ComputePeaks peaks;
  const std::string highway =
      absl::StrCat("highway:", HWY_DYNAMIC_DISPATCH(ProbeTargetName)());
  const double each = seconds / 3;
  peaks.f32_fma_flops = LoopPeak(pool, &DispatchF32, each);
  peaks.f32_isa = highway;
  const ProbeLoopFn bf16 = Avx512Bf16ProbeLoop();
  peaks.bf16_dot_flops = LoopPeak(pool, bf16 ? bf16 : &DispatchBf16, each);
  peaks.bf16_isa = bf16 ? "avx512_bf16" : highway;
  const ProbeLoopFn int8 = Avx512VnniProbeLoop();
  peaks.int8_dot_ops = LoopPeak(pool, int8 ? int8 : &DispatchInt8, each);
  peaks.int8_isa = int8 ? "avx512_vnni" : highway;
  return peaks;
}

absl::Status EvictFromPageCache(
    const std::vector<std::filesystem::path>& files) {
  for (const std::filesystem::path& file : files) {
    Fd fd;
    if (absl::Status s = OpenForRead(file, &fd); !s.ok()) return s;
    const int err = posix_fadvise(fd.fd, 0, 0, POSIX_FADV_DONTNEED);
    if (err != 0) {
      return absl::InternalError(absl::StrCat(
          file.string(),
          ": posix_fadvise(DONTNEED) failed: ", std::strerror(err)));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<FileReadThroughput> MeasureFileRead(
    const std::vector<std::filesystem::path>& files, double seconds) {
  std::vector<uint8_t> buffer(size_t{8} << 20);
  FileReadThroughput r;
  if (absl::Status s = EvictFromPageCache(files); !s.ok()) return s;
  const int64_t budget_ns = static_cast<int64_t>(seconds * 1e9);
  int64_t t0 = NowNs();
  absl::StatusOr<uint64_t> cold =
      ReadFiles(files, UINT64_MAX, t0 + budget_ns, buffer);
  if (!cold.ok()) return cold.status();
  const int64_t cold_ns = std::max<int64_t>(NowNs() - t0, 1);
  r.bytes = *cold;
  // The same bytes again, now from the page cache (no deadline: they were
  // just read, so this takes at most as long).
  t0 = NowNs();
  absl::StatusOr<uint64_t> warm = ReadFiles(files, r.bytes, INT64_MAX, buffer);
  if (!warm.ok()) return warm.status();
  const int64_t warm_ns = std::max<int64_t>(NowNs() - t0, 1);
  r.cold_bytes_per_second = static_cast<double>(r.bytes) * 1e9 / cold_ns;
  r.warm_bytes_per_second = static_cast<double>(*warm) * 1e9 / warm_ns;
  return r;
}

}  // namespace llmpack::runtime
#endif  // HWY_ONCE
