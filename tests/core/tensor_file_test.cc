#include "llmpack/tensor_file.h"

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "llmpack/checksum.h"
#include "llmpack/file_util.h"
#include "support/test_paths.h"

namespace llmpack {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

uint64_t U64At(const std::string& b, size_t off) {
  uint64_t v;
  std::memcpy(&v, b.data() + off, 8);
  return v;
}
uint32_t U32At(const std::string& b, size_t off) {
  uint32_t v;
  std::memcpy(&v, b.data() + off, 4);
  return v;
}
uint16_t U16At(const std::string& b, size_t off) {
  uint16_t v;
  std::memcpy(&v, b.data() + off, 2);
  return v;
}

// Writes one f32 tensor "w" = {1, -2} into a block file for layer 7.
fs::path WriteSmallFile(const fs::path& dir) {
  const fs::path path = dir / "t.bin";
  auto writer = TensorFileWriter::Create(path, format::FileKind::kBlock, 7,
                                         {{"w", DType::kF32, {2}, 8}});
  EXPECT_TRUE(writer.ok()) << writer.status();
  const float data[2] = {1.0f, -2.0f};
  EXPECT_TRUE(
      (*writer)->Append({reinterpret_cast<const uint8_t*>(data), 8}).ok());
  EXPECT_TRUE((*writer)->Finish().ok());
  return path;
}

TEST(TensorFileTest, GoldenBytes) {
  testing::ScopedTempDir tmp;
  const fs::path path = WriteSmallFile(tmp.path());
  const std::string b = *ReadFileToString(path);
  ASSERT_EQ(b.size(), 264u);  // 64 header + 192 entry + 8 data
  EXPECT_EQ(std::string(b.data(), 8), std::string("LLMPACK\0", 8));
  EXPECT_EQ(U16At(b, 8), 1);     // major
  EXPECT_EQ(U16At(b, 10), 0);    // minor
  EXPECT_EQ(U32At(b, 12), 2u);   // kind: block
  EXPECT_EQ(U32At(b, 16), 1u);   // tensor count
  EXPECT_EQ(U32At(b, 20), 64u);  // alignment
  EXPECT_EQ(U32At(b, 24), 7u);   // block index
  EXPECT_EQ(U64At(b, 32), 64u);  // directory offset
  EXPECT_EQ(U64At(b, 40), 192u);
  EXPECT_EQ(U64At(b, 48), Checksum64(b.data() + 64, 192));
  EXPECT_EQ(U64At(b, 56), 264u);
  // Directory entry at 64.
  EXPECT_EQ(b[64], 'w');
  EXPECT_EQ(b[65], '\0');
  EXPECT_EQ(U16At(b, 64 + 96), 1);    // f32
  EXPECT_EQ(U16At(b, 64 + 98), 1);    // rank
  EXPECT_EQ(U64At(b, 64 + 104), 2u);  // dims[0]
  EXPECT_EQ(U64At(b, 64 + 112), 0u);  // dims[1] unused
  EXPECT_EQ(U64At(b, 64 + 136), 256u);
  EXPECT_EQ(U64At(b, 64 + 144), 8u);
  EXPECT_EQ(U64At(b, 64 + 152), Checksum64(b.data() + 256, 8));
  // Data: little-endian IEEE floats 1.0 and -2.0.
  const unsigned char expected[8] = {0x00, 0x00, 0x80, 0x3F,
                                     0x00, 0x00, 0x00, 0xC0};
  EXPECT_EQ(std::memcmp(b.data() + 256, expected, 8), 0);
}

TEST(TensorFileTest, ReaderRoundTrip) {
  testing::ScopedTempDir tmp;
  const fs::path path = WriteSmallFile(tmp.path());
  auto reader = TensorFileReader::Open(path, format::FileKind::kBlock);
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ(reader->block_index(), 7);
  auto t = reader->Get("w");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ((*t)->shape, std::vector<int64_t>{2});
  float out[2];
  ASSERT_TRUE(
      reader->ReadTensor(**t, {reinterpret_cast<uint8_t*>(out), 8}, true).ok());
  EXPECT_EQ(out[1], -2.0f);
  ASSERT_TRUE(reader->ReadRows(**t, 0, 1, {reinterpret_cast<uint8_t*>(out), 8})
                  .ok());  // a rank-1 tensor is one row of 2
  EXPECT_THAT(std::string(reader->Get("nope").status().message()),
              HasSubstr("nope"));
}

// Writes one f32 tensor "w" of `floats` elements (w[i] = i) into a file of
// `kind` and returns its size.
uint64_t WriteOneTensor(const fs::path& path, format::FileKind kind,
                        int64_t floats) {
  const uint64_t bytes = static_cast<uint64_t>(floats) * 4;
  auto writer = TensorFileWriter::Create(path, kind, 0,
                                         {{"w", DType::kF32, {floats}, bytes}});
  EXPECT_TRUE(writer.ok()) << writer.status();
  std::vector<float> data(static_cast<size_t>(floats));
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<float>(i);
  EXPECT_TRUE(
      (*writer)
          ->Append({reinterpret_cast<const uint8_t*>(data.data()), bytes})
          .ok());
  auto size = (*writer)->Finish();
  EXPECT_TRUE(size.ok()) << size.status();
  EXPECT_EQ(fs::file_size(path), size.value_or(0));
  return size.value_or(0);
}

// package_format.md, "Block file padding": a block file that is 64 KiB short
// of two whole 2 MiB pieces gets a gap of 64 KiB after its directory and
// reads the same; an lm file of that size, and block files whose gap would
// be more than 1/16 of them or more than half a piece, or that are below
// 2 MiB, are not padded.
TEST(TensorFileTest, BlockFilesArePaddedToWhole2MiBPieces) {
  testing::ScopedTempDir tmp;
  constexpr uint64_t kPiece = format::kBlockPieceBytes;
  constexpr uint64_t kDataStart = 64 + 192;  // header + one entry
  constexpr int64_t kShortOf2Pieces =
      (2 * kPiece - (64 << 10) - kDataStart) / 4;
  const fs::path padded = tmp.path() / "block.bin";
  EXPECT_EQ(WriteOneTensor(padded, format::FileKind::kBlock, kShortOf2Pieces),
            2 * kPiece);
  auto reader = TensorFileReader::Open(padded, format::FileKind::kBlock);
  ASSERT_TRUE(reader.ok()) << reader.status();
  const TensorInfo& w = reader->tensors()[0];
  EXPECT_EQ(w.offset, kDataStart + (64 << 10));
  std::vector<float> out(static_cast<size_t>(kShortOf2Pieces));
  ASSERT_TRUE(
      reader
          ->ReadTensor(w,
                       {reinterpret_cast<uint8_t*>(out.data()), out.size() * 4},
                       /*verify_checksum=*/true)
          .ok());
  EXPECT_EQ(out.back(), static_cast<float>(kShortOf2Pieces - 1));
  const std::string bytes = *ReadFileToString(padded);
  EXPECT_EQ(bytes.find_first_not_of('\0', kDataStart), w.offset + 6)
      << "the gap is zeros, then w[0] = 0.0f and w[1] = 1.0f (00 00 80 3f)";

  const uint64_t unpadded = kDataStart + uint64_t{kShortOf2Pieces} * 4;
  EXPECT_EQ(WriteOneTensor(tmp.path() / "lm.bin", format::FileKind::kLm,
                           kShortOf2Pieces),
            unpadded);
  // Each of the three files below breaks one rule only. 3.25 MiB: a gap of
  // 0.75 MiB is more than 1/16 of the file.
  constexpr int64_t kGapOverAFraction = (kPiece * 13 / 8 - kDataStart) / 4;
  EXPECT_EQ(WriteOneTensor(tmp.path() / "b2.bin", format::FileKind::kBlock,
                           kGapOverAFraction),
            kPiece * 13 / 8);
  // 32.5 MiB: a gap of 1.5 MiB is more than half a piece.
  constexpr int64_t kGapOverHalfAPiece = (kPiece * 65 / 4 - kDataStart) / 4;
  EXPECT_EQ(WriteOneTensor(tmp.path() / "b3.bin", format::FileKind::kBlock,
                           kGapOverHalfAPiece),
            kPiece * 65 / 4);
  // Below 2 MiB.
  constexpr int64_t kBelow1Piece = (kPiece - (64 << 10)) / 4;
  EXPECT_EQ(WriteOneTensor(tmp.path() / "b4.bin", format::FileKind::kBlock,
                           kBelow1Piece),
            kDataStart + uint64_t{kBelow1Piece} * 4);
}

void Corrupt(const fs::path& path, size_t offset, const std::string& bytes) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

TEST(TensorFileTest, RejectsTruncatedFile) {
  testing::ScopedTempDir tmp;
  const fs::path path = WriteSmallFile(tmp.path());
  fs::resize_file(path, 200);
  auto r = TensorFileReader::Open(path);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("truncated"));
  fs::resize_file(path, 10);
  EXPECT_THAT(std::string(TensorFileReader::Open(path).status().message()),
              HasSubstr("smaller than"));
}

TEST(TensorFileTest, RejectsBadMagicVersionAndKind) {
  testing::ScopedTempDir tmp;
  const fs::path path = WriteSmallFile(tmp.path());
  EXPECT_THAT(std::string(TensorFileReader::Open(path, format::FileKind::kLm)
                              .status()
                              .message()),
              HasSubstr("file kind"));
  Corrupt(path, 8, std::string("\x02\x00", 2));
  EXPECT_THAT(std::string(TensorFileReader::Open(path).status().message()),
              HasSubstr("version 2.0"));
  Corrupt(path, 0, "GGUF");
  EXPECT_THAT(std::string(TensorFileReader::Open(path).status().message()),
              HasSubstr("bad magic"));
}

TEST(TensorFileTest, RejectsCorruptDirectoryAndData) {
  testing::ScopedTempDir tmp;
  const fs::path path = WriteSmallFile(tmp.path());
  Corrupt(path, 256, "X");  // data byte: directory fine, checksum fails
  auto r = TensorFileReader::Open(path);
  ASSERT_TRUE(r.ok());
  std::vector<uint8_t> buf(8);
  EXPECT_THAT(
      std::string(
          r->ReadTensor(r->tensors()[0], absl::MakeSpan(buf), true).message()),
      HasSubstr("checksum mismatch in tensor w"));
  Corrupt(path, 64 + 136, std::string("\x00\x10\x00\x00", 4));  // offset
  EXPECT_THAT(std::string(TensorFileReader::Open(path).status().message()),
              HasSubstr("directory checksum"));
}

TEST(TensorFileTest, WriterRejectsWrongSizesAndIncompleteData) {
  testing::ScopedTempDir tmp;
  auto bad =
      TensorFileWriter::Create(tmp.path() / "a.bin", format::FileKind::kLm, -1,
                               {{"w", DType::kF16, {3}, 8}});
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()),
              HasSubstr("size_bytes must be 6 bytes, spec says 8"));
  auto w = TensorFileWriter::Create(tmp.path() / "b.bin", format::FileKind::kLm,
                                    -1, {{"w", DType::kF16, {3}, 6}});
  ASSERT_TRUE(w.ok());
  const uint8_t two[2] = {1, 2};
  ASSERT_TRUE((*w)->Append(two).ok());
  EXPECT_THAT(std::string((*w)->Finish().status().message()),
              HasSubstr("incomplete"));
}

}  // namespace
}  // namespace llmpack
