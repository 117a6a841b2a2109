// Mapping block files in 2 MiB pieces (runtime/huge_mapping.h): the mapping
// starts at a 2 MiB boundary, shows the file's bytes, and, where the kernel
// and file system make 2 MiB page cache folios, a rebuild maps every whole
// 2 MiB piece with one entry.
#include "runtime/huge_mapping.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "llmpack/file_util.h"
#include "llmpack/mapped_file.h"
#include "support/test_paths.h"

namespace llmpack::runtime {
namespace {

using ::llmpack::testing::ScopedTempDir;

constexpr size_t kTwoMiB = MappedFile::kHugePageBytes;

// A file of three whole 2 MiB pieces and a partial one, on disk (synced, so
// its pages are clean and may be dropped) and then read with read(), which
// usually caches it in small folios.
std::vector<uint8_t> WriteFile(const std::filesystem::path& path) {
  std::vector<uint8_t> bytes(3 * kTwoMiB + 12345);
  for (size_t i = 0; i < bytes.size(); ++i) {
    bytes[i] = static_cast<uint8_t>(i * 2654435761u >> 24);
  }
  {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
  }
  const int fd = ::open(path.c_str(), O_RDONLY);
  ::fsync(fd);
  std::vector<uint8_t> sink(bytes.size());
  EXPECT_EQ(::pread(fd, sink.data(), sink.size(), 0),
            static_cast<ssize_t>(sink.size()));
  ::close(fd);
  return bytes;
}

TEST(HugeMappingTest, LargeFilesAreMappedAtA2MiBBoundary) {
  ScopedTempDir dir;
  const std::vector<uint8_t> bytes = WriteFile(dir.path() / "f.bin");
  auto file = ReadOnlyFile::Open(dir.path() / "f.bin");
  ASSERT_TRUE(file.ok()) << file.status();
  for (int i = 0; i < 3; ++i) {  // not a lucky address: every time
    auto map = MappedFile::Map(*file);
    ASSERT_TRUE(map.ok()) << map.status();
    EXPECT_EQ(reinterpret_cast<uintptr_t>(map->data()) % kTwoMiB, 0u);
    ASSERT_EQ(map->size(), bytes.size());
    EXPECT_EQ(std::memcmp(map->data(), bytes.data(), bytes.size()), 0);
  }
  EXPECT_EQ(HugeMappableBytes(bytes.size()), 3 * kTwoMiB);
  EXPECT_EQ(HugeMappableBytes(kTwoMiB - 1), 0u);
}

TEST(HugeMappingTest, RebuildMapsEveryWhole2MiBPieceWhereSupported) {
  ScopedTempDir dir;
  const std::vector<uint8_t> bytes = WriteFile(dir.path() / "f.bin");
  auto file = ReadOnlyFile::Open(dir.path() / "f.bin");
  ASSERT_TRUE(file.ok()) << file.status();
  auto m = MapInHugeFolios(*file, /*rebuild=*/true);
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->map.size(), bytes.size());
  EXPECT_EQ(std::memcmp(m->map.data(), bytes.data(), bytes.size()), 0)
      << "a rebuild re-reads the file: the bytes must be the same";
  if (!m->huge) {
    GTEST_SKIP() << "this kernel or file system gives no 2 MiB page cache "
                    "folios for "
                 << dir.path() << " (FilePmdMapped "
                 << HugeMappedBytes(m->map.data()) << " bytes)";
  }
  EXPECT_GE(HugeMappedBytes(m->map.data()), 3 * kTwoMiB);
  // Now cached in 2 MiB folios: mapping again needs no rebuild.
  auto again = MapInHugeFolios(*file, /*rebuild=*/true);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->huge);
  EXPECT_FALSE(again->rebuilt);

  // A path longer than any fixed line buffer, of hex-letter names: smaps
  // names the file in the mapping's header line, which must be read whole
  // (a split line would look like the next mapping's header).
  std::filesystem::path deep = dir.path();
  for (char c : {'a', 'b', 'c'}) deep /= std::string(200, c);
  std::filesystem::create_directories(deep);
  WriteFile(deep / "f.bin");
  auto deep_file = ReadOnlyFile::Open(deep / "f.bin");
  ASSERT_TRUE(deep_file.ok()) << deep_file.status();
  auto deep_map = MapInHugeFolios(*deep_file, /*rebuild=*/true);
  ASSERT_TRUE(deep_map.ok()) << deep_map.status();
  EXPECT_TRUE(deep_map->huge);
  EXPECT_GE(HugeMappedBytes(deep_map->map.data()), 3 * kTwoMiB);
}

TEST(HugeMappingTest, WithoutRebuildNothingIsChecked) {
  ScopedTempDir dir;
  WriteFile(dir.path() / "f.bin");
  auto file = ReadOnlyFile::Open(dir.path() / "f.bin");
  ASSERT_TRUE(file.ok()) << file.status();
  auto m = MapInHugeFolios(*file, /*rebuild=*/false);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_FALSE(m->huge);
  EXPECT_FALSE(m->rebuilt);
  int not_mapped = 0;
  EXPECT_EQ(HugeMappedBytes(&not_mapped), 0u);
}

// Writes a file of `size` bytes (a pattern that depends on `seed`) to
// `path`, loads it into `slot` and checks that the slot shows it byte for
// byte, from a 2 MiB boundary.
void LoadAndCompare(SlotMapping& slot, const std::filesystem::path& path,
                    size_t size, size_t seed) {
  SCOPED_TRACE(size);
  std::vector<uint8_t> content(size);
  for (size_t j = 0; j < content.size(); ++j) {
    content[j] = static_cast<uint8_t>((j + 31 * seed) * 2654435761u >> 24);
  }
  {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(content.data()),
              static_cast<std::streamsize>(content.size()));
  }
  auto file = ReadOnlyFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  auto m = slot.Load(*file, /*rebuild=*/false);
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(slot.size(), content.size());
  EXPECT_GE(slot.capacity(), content.size());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(slot.data()) % kTwoMiB, 0u);
  EXPECT_EQ(std::memcmp(slot.data(), content.data(), content.size()), 0);
}

// A slot shows each file it loads byte for byte, whatever the order of
// sizes: larger (a new range), equal (the same range), smaller (a longer
// mapped head), and below 2 MiB (all copied).
TEST(HugeMappingTest, SlotShowsEveryFileItLoads) {
  ScopedTempDir dir;
  const std::vector<uint8_t> bytes = WriteFile(dir.path() / "f.bin");
  const size_t sizes[] = {bytes.size(), bytes.size(), 2 * kTwoMiB + 7,
                          kTwoMiB,      1000,         bytes.size() + kTwoMiB};
  SlotMapping slot;
  const uint8_t* first_range = nullptr;
  for (size_t i = 0; i < std::size(sizes); ++i) {
    LoadAndCompare(slot, dir.path() / ("g" + std::to_string(i)), sizes[i], i);
    if (i == 0) first_range = slot.data();
    if (i > 0 && i < 5) {
      EXPECT_EQ(slot.data(), first_range) << "no larger file: same range";
    }
  }
}

// A padded block file (package_format.md, "Block file padding") is whole
// 2 MiB pieces with nothing to copy: a fresh slot sized by it has no
// anonymous part, and later files with a partial piece, and the whole one
// again, still show byte for byte.
TEST(HugeMappingTest, SlotLoadsFilesOfWholePieces) {
  ScopedTempDir dir;
  const size_t sizes[] = {2 * kTwoMiB, kTwoMiB + 4096, 2 * kTwoMiB};
  SlotMapping slot;
  for (size_t i = 0; i < std::size(sizes); ++i) {
    LoadAndCompare(slot, dir.path() / ("w" + std::to_string(i)), sizes[i], i);
    EXPECT_EQ(slot.capacity(), 2 * kTwoMiB);
  }
}

}  // namespace
}  // namespace llmpack::runtime
