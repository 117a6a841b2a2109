// Randomly damaged safetensors headers and truncations must give a status,
// never a crash or a read outside the file.
#include <cstring>
#include <random>

#include "convert/safetensors.h"
#include "gtest/gtest.h"
#include "llmpack/file_util.h"
#include "support/test_paths.h"

namespace llmpack::convert {
namespace {

namespace fs = std::filesystem;

void Exercise(const fs::path& path) {
  auto file = SafetensorsFile::Open(path);
  if (!file.ok()) {
    EXPECT_FALSE(file.status().message().empty());
    return;
  }
  const uint64_t size = fs::file_size(path);
  uint64_t sum = 0;
  for (const auto& [name, t] : (*file)->tensors()) {
    ASSERT_LE(t.begin + t.size, size) << name;
    for (uint8_t b : (*file)->Data(t)) sum += b;  // touch every byte
  }
  volatile uint64_t sink = sum;  // keep the reads
  (void)sink;
}

TEST(SafetensorsMutationTest, DamagedHeadersAndTruncationsNeverCrash) {
  LLMPACK_REQUIRE_FIXTURES();
  const std::string valid = *ReadFileToString(
      testing::FixturesDir() / "stories260K" / "hf" / "model.safetensors");
  uint64_t header_len;
  std::memcpy(&header_len, valid.data(), 8);
  testing::ScopedTempDir tmp;
  const fs::path path = tmp.path() / "model.safetensors";
  std::mt19937 rng(7);
  int rejected = 0;
  for (int i = 0; i < 400; ++i) {
    std::string bytes = valid;
    if (i % 4 == 0) {
      bytes.resize(rng() % valid.size());
    } else {
      for (int f = 0; f < 3; ++f) {
        bytes[rng() % (8 + header_len)] = "0123456789[]{}\",:-e"[rng() % 19];
      }
    }
    ASSERT_TRUE(WriteStringToFile(path, bytes).ok());
    Exercise(path);
    rejected += !SafetensorsFile::Open(path).ok();
  }
  EXPECT_GT(rejected, 100);
}

}  // namespace
}  // namespace llmpack::convert
