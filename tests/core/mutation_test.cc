// Hostile bytes: randomly damaged tensor files must give a status, never a
// crash, an out-of-bounds read or an absurd allocation.
#include <random>

#include "gtest/gtest.h"
#include "llmpack/file_util.h"
#include "llmpack/tensor_file.h"
#include "support/test_paths.h"

namespace llmpack {
namespace {

namespace fs = std::filesystem;

std::string ValidFile(const fs::path& dir) {
  const fs::path path = dir / "valid.bin";
  auto writer = TensorFileWriter::Create(
      path, format::FileKind::kBlock, 0,
      {{"a", DType::kF32, {3, 5}, 60},
       {"b", DType::kBF16, {7}, 14},
       // q4 [2, 7], group 4, f16 scales, zero points: 2 rows of 9 bytes.
       {"q",
        DType::kQ4,
        {2, 7},
        18,
        4,
        static_cast<uint16_t>(DType::kF16),
        format::kQuantFlagZeroPoint}});
  EXPECT_TRUE(writer.ok()) << writer.status();
  std::vector<uint8_t> data(92, 0x3F);
  EXPECT_TRUE((*writer)->Append(data).ok());
  EXPECT_TRUE((*writer)->Finish().ok());
  return *ReadFileToString(path);
}

// Opens the damaged file and reads everything it claims to hold.
void Exercise(const fs::path& path) {
  auto reader = TensorFileReader::Open(path);
  if (!reader.ok()) {
    EXPECT_FALSE(reader.status().message().empty());
    return;
  }
  for (const TensorInfo& t : reader->tensors()) {
    ASSERT_LE(t.offset + t.size_bytes, reader->file().size());
    std::vector<uint8_t> buf(t.size_bytes);
    (void)reader->ReadTensor(t, absl::MakeSpan(buf), true);
    if (t.row_bytes() > 0) {
      std::vector<uint8_t> row(t.row_bytes());
      (void)reader->ReadRows(t, 0, 1, absl::MakeSpan(row));
    }
  }
}

TEST(TensorFileMutationTest, RandomByteDamageNeverCrashes) {
  testing::ScopedTempDir tmp;
  const std::string valid = ValidFile(tmp.path());
  std::mt19937 rng(20261126);
  const fs::path path = tmp.path() / "damaged.bin";
  int rejected = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string bytes = valid;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      // Mostly hit header and directory, where sizes and offsets live.
      const size_t pos = rng() % 4 ? rng() % 640 : rng() % bytes.size();
      bytes[pos] = static_cast<char>(rng());
    }
    ASSERT_TRUE(WriteStringToFile(path, bytes).ok());
    Exercise(path);
    rejected += !TensorFileReader::Open(path).ok();
  }
  // Header and directory are checksummed: nearly every mutation there fails.
  EXPECT_GT(rejected, 2000);
}

TEST(TensorFileMutationTest, EveryTruncationIsRejected) {
  testing::ScopedTempDir tmp;
  const std::string valid = ValidFile(tmp.path());
  const fs::path path = tmp.path() / "short.bin";
  for (size_t len = 0; len < valid.size(); ++len) {
    ASSERT_TRUE(WriteStringToFile(path, valid.substr(0, len)).ok());
    EXPECT_FALSE(TensorFileReader::Open(path).ok()) << "length " << len;
  }
}

}  // namespace
}  // namespace llmpack
