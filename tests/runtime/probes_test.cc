// The in-run hardware probes: each returns a positive figure on any
// machine, the dot-product loops do the work they count, and the file
// probe reads what it says and names a file it cannot read. No wall-clock
// thresholds: the figures depend on the machine.
#include "runtime/probes.h"

#include <fstream>
#include <vector>

#include "gtest/gtest.h"
#include "runtime/probe_loops.h"
#include "runtime/thread_pool.h"
#include "support/test_paths.h"

namespace llmpack::runtime {
namespace {

TEST(ProbesTest, ReadBandwidthIsPositive) {
  ThreadPool pool(2);
  absl::StatusOr<double> bw =
      MeasureReadBandwidth(pool, uint64_t{16} << 20, 0.02);
  ASSERT_TRUE(bw.ok()) << bw.status();
  EXPECT_GT(*bw, 0);
}

TEST(ProbesTest, ReadBandwidthRejectsABufferBelowOneChunk) {
  ThreadPool pool(1);
  absl::StatusOr<double> bw = MeasureReadBandwidth(pool, 4096, 0.01);
  ASSERT_FALSE(bw.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(bw.status())) << bw.status();
}

TEST(ProbesTest, ComputePeaksArePositiveAndNameTheirInstructions) {
  ThreadPool pool(2);
  const ComputePeaks p = MeasureComputePeaks(pool, 0.03);
  EXPECT_GT(p.f32_fma_flops, 0);
  EXPECT_GT(p.bf16_dot_flops, 0);
  EXPECT_GT(p.int8_dot_ops, 0);
  EXPECT_NE(p.f32_isa.find("highway:"), std::string::npos);
  EXPECT_FALSE(p.bf16_isa.empty());
  EXPECT_FALSE(p.int8_isa.empty());
}

// The x86 extension loops, where this CPU has them: the accumulators hold
// exactly the products the returned operation count claims.
TEST(ProbesTest, X86DotLoopsDoTheWorkTheyCount) {
  const ProbeLoopFn vnni = Avx512VnniProbeLoop();
  const ProbeLoopFn bf16 = Avx512Bf16ProbeLoop();
  if (vnni == nullptr && bf16 == nullptr) {
    GTEST_SKIP() << "SKIPPED: this CPU has neither AVX-512 VNNI nor BF16";
  }
  if (vnni != nullptr) {
    double sink = 0;
    const double ops = vnni(100, &sink);
    // 12 chains x 64 products per instruction, 2 ops each; every product
    // is 1 * 1.
    EXPECT_EQ(ops, 100.0 * 12 * 64 * 2);
    EXPECT_EQ(sink, ops / 2);
  }
  if (bf16 != nullptr) {
    double sink = 0;
    const double ops = bf16(100, &sink);
    EXPECT_EQ(ops, 100.0 * 12 * 32 * 2);
    // Every product is bf16(1e-3) * 0.5.
    EXPECT_NEAR(sink, ops / 2 * 1e-3 * 0.5, ops / 2 * 1e-3 * 0.5 * 1e-2);
  }
}

TEST(ProbesTest, FileReadReadsTheFilesColdAndWarm) {
  testing::ScopedTempDir dir;
  std::vector<std::filesystem::path> files;
  for (int i = 0; i < 2; ++i) {
    files.push_back(dir.path() / ("f" + std::to_string(i)));
    std::ofstream f(files.back(), std::ios::binary);
    const std::vector<char> bytes((size_t{3} << 20) + 17, 'x');
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  absl::StatusOr<FileReadThroughput> r = MeasureFileRead(files, 5.0);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->bytes, 2 * ((uint64_t{3} << 20) + 17));
  EXPECT_GT(r->cold_bytes_per_second, 0);
  EXPECT_GT(r->warm_bytes_per_second, 0);
}

TEST(ProbesTest, FileReadAndEvictNameAMissingFile) {
  testing::ScopedTempDir dir;
  const std::filesystem::path missing = dir.path() / "block_007.bin";
  absl::StatusOr<FileReadThroughput> r = MeasureFileRead({missing}, 0.1);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("block_007.bin"), std::string::npos)
      << r.status();
  const absl::Status evict = EvictFromPageCache({missing});
  EXPECT_TRUE(absl::IsNotFound(evict)) << evict;
}

}  // namespace
}  // namespace llmpack::runtime
