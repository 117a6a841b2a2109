// Golden bytes of q4/q8 tensors (formats/package_format.md, "Quantized
// tensors") written through TensorFileWriter + quant::PackRow, read back, and
// the reader's refusals of every quantized-layout field it checks.
#include <cstring>
#include <fstream>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "llmpack/checksum.h"
#include "llmpack/file_util.h"
#include "llmpack/tensor_file.h"
#include "quant/codec.h"
#include "support/test_paths.h"

namespace llmpack {
namespace {

using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

constexpr uint16_t kF16Code = static_cast<uint16_t>(DType::kF16);
constexpr uint16_t kBF16Code = static_cast<uint16_t>(DType::kBF16);

// One tensor's codes, scales and zero points, row by row.
struct Rows {
  quant::QuantFormat format;
  std::vector<int64_t> shape;
  std::vector<std::vector<int>> codes;
  std::vector<std::vector<float>> scales;
  std::vector<std::vector<int>> zeros;
};

// q4 [2, 7], group 4 (a short last group of 3), asymmetric, f16 scales: odd
// code and zero-point nibble counts, and a scale (0.1) f16 must round.
Rows Q4Asym() {
  return {{DType::kQ4, 4, DType::kF16, true},
          {2, 7},
          {{0, 1, 2, 3, 4, 5, 6}, {15, 14, 13, 12, 11, 10, 9}},
          {{0.5f, 0.1f}, {0.25f, 3.0f}},
          {{8, 3}, {0, 15}}};
}

// q8 [2, 5], group 2 (last group of 1), symmetric, bf16 scales.
Rows Q8Sym() {
  return {{DType::kQ8, 2, DType::kBF16, false},
          {2, 5},
          {{-128, 127, -1, 0, 5}, {1, -2, 3, -4, 100}},
          {{1.0f, 0.1f, 3.0f}, {0.5f, 2.0f, 0.25f}},
          {{}, {}}};
}

// q8 [1, 2, 3] (rank 3: rows = 1 * 2), per-row group, asymmetric, f16.
Rows Q8AsymRank3() {
  return {{DType::kQ8, 3, DType::kF16, true},
          {1, 2, 3},
          {{-3, 0, 7}, {10, -10, 20}},
          {{1.5f}, {0.1f}},
          {{-3}, {10}}};
}

std::vector<uint8_t> Pack(const Rows& r) {
  const auto layout = quant::MakeRowLayout(r.format, r.shape.back());
  EXPECT_TRUE(layout.ok()) << layout.status();
  std::vector<uint8_t> out(layout->row_bytes * r.codes.size());
  for (size_t i = 0; i < r.codes.size(); ++i) {
    quant::PackRow(*layout, r.codes[i], r.scales[i], r.zeros[i],
                   out.data() + i * layout->row_bytes);
  }
  return out;
}

TensorSpec Spec(const std::string& name, const Rows& r, uint64_t size) {
  return {name,
          r.format.dtype,
          r.shape,
          size,
          static_cast<uint32_t>(r.format.group_size),
          static_cast<uint16_t>(r.format.scale_dtype),
          static_cast<uint16_t>(
              r.format.zero_point ? format::kQuantFlagZeroPoint : 0)};
}

fs::path WriteQuantFile(const fs::path& dir) {
  const fs::path path = dir / "q.bin";
  const std::vector<Rows> all = {Q4Asym(), Q8Sym(), Q8AsymRank3()};
  const char* names[] = {"q4", "q8", "q8_rank3"};
  std::vector<TensorSpec> specs;
  std::vector<std::vector<uint8_t>> data;
  for (size_t i = 0; i < all.size(); ++i) {
    data.push_back(Pack(all[i]));
    specs.push_back(Spec(names[i], all[i], data.back().size()));
  }
  auto writer =
      TensorFileWriter::Create(path, format::FileKind::kBlock, 0, specs);
  EXPECT_TRUE(writer.ok()) << writer.status();
  for (const auto& d : data) EXPECT_TRUE((*writer)->Append(d).ok());
  EXPECT_TRUE((*writer)->Finish().ok());
  return path;
}

template <typename T>
T At(const std::string& b, size_t off) {
  T v;
  std::memcpy(&v, b.data() + off, sizeof(T));
  return v;
}

std::vector<uint8_t> Bytes(const std::string& b, size_t off, size_t n) {
  return std::vector<uint8_t>(b.begin() + off, b.begin() + off + n);
}

// Header 64 + 3 entries of 192 = 640, already 64-aligned.
constexpr size_t kQ4Offset = 640;
constexpr size_t kQ8Offset = 704;       // 640 + 18, aligned up
constexpr size_t kQ8Rank3Offset = 768;  // 704 + 22, aligned up
constexpr size_t kFileSize = 780;       // 768 + 12

TEST(QuantFormatTest, GoldenBytes) {
  testing::ScopedTempDir tmp;
  const std::string b = *ReadFileToString(WriteQuantFile(tmp.path()));
  ASSERT_EQ(b.size(), kFileSize);
  EXPECT_EQ(At<uint64_t>(b, 48), Checksum64(b.data() + 64, 3 * 192));

  // Entry 0: q4 [2, 7], group 4, f16 scales, zero points.
  const size_t e0 = 64;
  EXPECT_EQ(At<uint16_t>(b, e0 + 96), 17);   // q4
  EXPECT_EQ(At<uint16_t>(b, e0 + 98), 2);    // rank
  EXPECT_EQ(At<uint32_t>(b, e0 + 100), 4u);  // group_size
  EXPECT_EQ(At<uint64_t>(b, e0 + 104), 2u);
  EXPECT_EQ(At<uint64_t>(b, e0 + 112), 7u);
  EXPECT_EQ(At<uint64_t>(b, e0 + 136), kQ4Offset);
  // Row: 4 code bytes + 2 groups * 2 scale bytes + 1 zero-point byte = 9.
  EXPECT_EQ(At<uint64_t>(b, e0 + 144), 18u);
  EXPECT_EQ(At<uint16_t>(b, e0 + 160), 2);  // scale_dtype f16
  EXPECT_EQ(At<uint16_t>(b, e0 + 162), 1);  // quant_flags: zero point
  EXPECT_EQ(At<uint64_t>(b, e0 + 152), Checksum64(b.data() + kQ4Offset, 18));
  const std::vector<uint8_t> q4 = {
      // row 0: codes 0..6, low nibble first, last high nibble 0
      0x10, 0x32, 0x54, 0x06,
      // scales 0.5 (0x3800) and 0.1 (rounds to f16 0x2E66), little-endian
      0x00, 0x38, 0x66, 0x2E,
      // zero points 8 and 3
      0x38,
      // row 1: codes 15..9
      0xEF, 0xCD, 0xAB, 0x09,
      // scales 0.25 (0x3400) and 3.0 (0x4200)
      0x00, 0x34, 0x00, 0x42,
      // zero points 0 and 15
      0xF0};
  EXPECT_THAT(Bytes(b, kQ4Offset, 18), ElementsAreArray(q4));
  // Alignment gap after the tensor is zero.
  EXPECT_THAT(Bytes(b, kQ4Offset + 18, kQ8Offset - kQ4Offset - 18),
              ::testing::Each(0));

  // Entry 1: q8 [2, 5], group 2, bf16 scales, symmetric.
  const size_t e1 = 64 + 192;
  EXPECT_EQ(At<uint16_t>(b, e1 + 96), 16);  // q8
  EXPECT_EQ(At<uint32_t>(b, e1 + 100), 2u);
  EXPECT_EQ(At<uint64_t>(b, e1 + 136), kQ8Offset);
  EXPECT_EQ(At<uint64_t>(b, e1 + 144), 22u);  // 2 * (5 + 3 * 2)
  EXPECT_EQ(At<uint16_t>(b, e1 + 160), 3);    // bf16
  EXPECT_EQ(At<uint16_t>(b, e1 + 162), 0);
  const std::vector<uint8_t> q8 = {
      // row 0: codes -128, 127, -1, 0, 5 (two's complement)
      0x80, 0x7F, 0xFF, 0x00, 0x05,
      // bf16 scales 1.0 (0x3F80), 0.1 (rounds to 0x3DCD), 3.0 (0x4040)
      0x80, 0x3F, 0xCD, 0x3D, 0x40, 0x40,
      // row 1: codes 1, -2, 3, -4, 100
      0x01, 0xFE, 0x03, 0xFC, 0x64,
      // bf16 scales 0.5 (0x3F00), 2.0 (0x4000), 0.25 (0x3E80)
      0x00, 0x3F, 0x00, 0x40, 0x80, 0x3E};
  EXPECT_THAT(Bytes(b, kQ8Offset, 22), ElementsAreArray(q8));

  // Entry 2: q8 [1, 2, 3], per-row group, f16, zero points: 2 rows of 6.
  const size_t e2 = 64 + 2 * 192;
  EXPECT_EQ(At<uint16_t>(b, e2 + 98), 3);  // rank
  EXPECT_EQ(At<uint32_t>(b, e2 + 100), 3u);
  EXPECT_EQ(At<uint64_t>(b, e2 + 136), kQ8Rank3Offset);
  EXPECT_EQ(At<uint64_t>(b, e2 + 144), 12u);
  const std::vector<uint8_t> q8_rank3 = {
      // row 0: codes -3, 0, 7; scale 1.5 (0x3E00); zero point -3
      0xFD, 0x00, 0x07, 0x00, 0x3E, 0xFD,
      // row 1: codes 10, -10, 20; scale 0.1 (0x2E66); zero point 10
      0x0A, 0xF6, 0x14, 0x66, 0x2E, 0x0A};
  EXPECT_THAT(Bytes(b, kQ8Rank3Offset, 12), ElementsAreArray(q8_rank3));
}

TEST(QuantFormatTest, ReadsBackRowsAndValues) {
  testing::ScopedTempDir tmp;
  auto reader = TensorFileReader::Open(WriteQuantFile(tmp.path()));
  ASSERT_TRUE(reader.ok()) << reader.status();
  const TensorInfo& q4 = *reader->Find("q4");
  EXPECT_EQ(q4.dtype, DType::kQ4);
  EXPECT_EQ(q4.group_size, 4u);
  EXPECT_EQ(q4.row_bytes(), 9u);
  EXPECT_EQ(q4.num_rows(), 2);

  // One row at a time, as the disk embedding reads int8 rows.
  std::vector<uint8_t> row(q4.row_bytes());
  ASSERT_TRUE(reader->ReadRows(q4, 1, 1, absl::MakeSpan(row)).ok());
  EXPECT_THAT(row, ElementsAreArray(
                       {0xEF, 0xCD, 0xAB, 0x09, 0x00, 0x34, 0x00, 0x42, 0xF0}));
  auto layout = quant::MakeRowLayout(Q4Asym().format, 7);
  ASSERT_TRUE(layout.ok());
  float values[7];
  quant::DequantizeRow(*layout, row.data(), values);
  // 0.25 * (15 - 0) ... and 3.0 * (11 - 15) for the short last group.
  EXPECT_THAT(values, ElementsAreArray(
                          {3.75f, 3.5f, 3.25f, 3.0f, -12.0f, -15.0f, -18.0f}));
  EXPECT_FALSE(reader->ReadRows(q4, 2, 1, absl::MakeSpan(row)).ok());

  const TensorInfo& q8 = *reader->Find("q8_rank3");
  EXPECT_EQ(q8.num_rows(), 2);
  std::vector<uint8_t> q8_row(q8.row_bytes());
  ASSERT_EQ(q8_row.size(), 6u);
  ASSERT_TRUE(reader->ReadRows(q8, 0, 1, absl::MakeSpan(q8_row)).ok());
  auto q8_layout = quant::MakeRowLayout(Q8AsymRank3().format, 3);
  ASSERT_TRUE(q8_layout.ok());
  quant::DequantizeRow(*q8_layout, q8_row.data(), values);
  EXPECT_THAT(absl::MakeSpan(values, 3), ElementsAreArray({0.0f, 4.5f, 15.0f}));

  // The whole tensor round-trips through UnpackRow.
  std::vector<uint8_t> all(q4.size_bytes);
  ASSERT_TRUE(reader->ReadTensor(q4, absl::MakeSpan(all), true).ok());
  const quant::UnpackedRow r0 = quant::UnpackRow(*layout, all.data());
  EXPECT_EQ(r0.codes, Q4Asym().codes[0]);
  EXPECT_EQ(r0.zeros, Q4Asym().zeros[0]);
  EXPECT_EQ(r0.scales[1], 0.0999755859375f);  // f16(0.1)
}

// DequantizeRow decodes whole bytes; it must give exactly the floats of the
// per-element definition scale * (CodeAt - zero), including groups of odd
// size that start on a high nibble and rows of odd length. Random bytes
// cover every code, scale and zero point pattern (NaN scales compare by bits).
TEST(QuantFormatTest, DequantizeRowMatchesPerElementDefinition) {
  std::mt19937 rng(7);
  for (const DType dtype : {DType::kQ4, DType::kQ8}) {
    for (const bool zp : {true, false}) {
      for (const int64_t cols : {1, 2, 7, 33, 172}) {
        for (const int64_t group : {1, 3, 5, 32, 64}) {
          if (group > cols) continue;
          auto layout =
              quant::MakeRowLayout({dtype, group, DType::kF16, zp}, cols);
          ASSERT_TRUE(layout.ok()) << layout.status();
          std::vector<uint8_t> row(static_cast<size_t>(layout->row_bytes));
          for (uint8_t& b : row) b = static_cast<uint8_t>(rng());
          std::vector<float> fast(static_cast<size_t>(cols));
          std::vector<float> reference(fast.size());
          quant::DequantizeRow(*layout, row.data(), fast.data());
          for (int64_t c = 0; c < cols; ++c) {
            const int64_t j = c / group;
            reference[c] =
                quant::GroupScale(*layout, row.data(), j) *
                static_cast<float>(quant::CodeAt(*layout, row.data(), c) -
                                   quant::GroupZero(*layout, row.data(), j));
          }
          EXPECT_EQ(std::memcmp(fast.data(), reference.data(),
                                fast.size() * sizeof(float)),
                    0)
              << DTypeName(dtype) << " zp " << zp << " cols " << cols
              << " group " << group;
        }
      }
    }
  }
}

// Damages the file at `offset` and, when the damage is in the directory,
// recomputes the directory checksum so the check behind it is reached.
void Damage(const fs::path& path, size_t offset, const void* bytes, size_t n) {
  std::string b = *ReadFileToString(path);
  std::memcpy(b.data() + offset, bytes, n);
  const uint64_t count = At<uint32_t>(b, 16);
  const uint64_t sum = Checksum64(b.data() + 64, count * 192);
  std::memcpy(b.data() + 48, &sum, 8);
  ASSERT_TRUE(WriteStringToFile(path, b).ok());
}

template <typename T>
std::string OpenErrorAfter(size_t offset, T value) {
  testing::ScopedTempDir tmp;
  const fs::path path = WriteQuantFile(tmp.path());
  Damage(path, offset, &value, sizeof(value));
  const auto r = TensorFileReader::Open(path);
  EXPECT_FALSE(r.ok()) << "damage at " << offset << " was accepted";
  return std::string(r.status().message());
}

constexpr size_t kEntry0 = 64;

TEST(QuantFormatTest, ReaderRefusesWrongQuantizedSize) {
  const std::string m = OpenErrorAfter(kEntry0 + 144, uint64_t{17});
  EXPECT_THAT(m, HasSubstr("q.bin"));
  EXPECT_THAT(m, HasSubstr("tensor q4 [2, 7] q4"));
  EXPECT_THAT(m, HasSubstr("size_bytes should be 18 bytes, directory says 17"));
  // A different group size implies a different size: 3 groups of 3, 3, 1.
  EXPECT_THAT(OpenErrorAfter(kEntry0 + 100, uint32_t{3}),
              HasSubstr("size_bytes should be 24 bytes, directory says 18"));
}

TEST(QuantFormatTest, ReaderRefusesGroupSizeOutOfRange) {
  EXPECT_THAT(OpenErrorAfter(kEntry0 + 100, uint32_t{0}),
              HasSubstr("tensor q4 q4: group_size must be in 1..7 (the last "
                        "dim of [2, 7]), found 0"));
  EXPECT_THAT(OpenErrorAfter(kEntry0 + 100, uint32_t{8}),
              HasSubstr("group_size must be in 1..7 (the last dim of [2, 7]), "
                        "found 8"));
}

TEST(QuantFormatTest, ReaderRefusesScaleDtype) {
  EXPECT_THAT(OpenErrorAfter(kEntry0 + 160, uint16_t{1}),
              HasSubstr("tensor q4 q4: scale_dtype must be 2 (f16) or 3 "
                        "(bf16), found 1"));
  EXPECT_THAT(OpenErrorAfter(kEntry0 + 160, uint16_t{0}), HasSubstr("found 0"));
}

TEST(QuantFormatTest, ReaderRefusesUnknownQuantFlags) {
  EXPECT_THAT(OpenErrorAfter(kEntry0 + 162, uint16_t{0x3}),
              HasSubstr("tensor q4 q4: quant_flags may only use bits 0x1, "
                        "found 0x3"));
}

TEST(QuantFormatTest, ReaderRefusesNonZeroReservedFields) {
  EXPECT_THAT(OpenErrorAfter(28, uint32_t{1}),
              HasSubstr("q.bin: header field reserved0 must be 0, found 1"));
  EXPECT_THAT(OpenErrorAfter(kEntry0 + 164, uint32_t{5}),
              HasSubstr("tensor q4: directory field reserved0 must be 0, "
                        "found 5"));
  EXPECT_THAT(OpenErrorAfter(kEntry0 + 184, uint64_t{9}),
              HasSubstr("tensor q4: directory field reserved1[2] must be 0, "
                        "found 9"));
}

// Float tensors carry no quantization fields.
TEST(QuantFormatTest, ReaderRefusesQuantFieldsOnFloatTensors) {
  testing::ScopedTempDir tmp;
  const fs::path path = tmp.path() / "f.bin";
  {
    auto w = TensorFileWriter::Create(path, format::FileKind::kLm, -1,
                                      {{"w", DType::kF16, {3}, 6}});
    ASSERT_TRUE(w.ok());
    const uint8_t six[6] = {};
    ASSERT_TRUE((*w)->Append(six).ok());
    ASSERT_TRUE((*w)->Finish().ok());
  }
  const std::string valid = *ReadFileToString(path);
  struct Case {
    size_t offset;
    uint16_t value;
    const char* message;
  } cases[] = {
      {64 + 100, 32,
       "tensor w f16: group_size must be 0 for float type f16, "
       "found 32"},
      {64 + 160, kF16Code, "scale_dtype must be 0 for float type f16, found 2"},
      {64 + 162, 1, "quant_flags must be 0 for float type f16, found 1"},
  };
  for (const Case& c : cases) {
    ASSERT_TRUE(WriteStringToFile(path, valid).ok());
    Damage(path, c.offset, &c.value, sizeof(c.value));
    const auto r = TensorFileReader::Open(path);
    ASSERT_FALSE(r.ok()) << c.message;
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(c.message));
  }
}

TEST(QuantFormatTest, WriterChecksQuantizedSpecs) {
  testing::ScopedTempDir tmp;
  const fs::path path = tmp.path() / "w.bin";
  auto create = [&](TensorSpec spec) {
    return TensorFileWriter::Create(path, format::FileKind::kBlock, 0,
                                    {std::move(spec)})
        .status();
  };
  TensorSpec good = Spec("q", Q4Asym(), 18);
  EXPECT_TRUE(create(good).ok());
  TensorSpec wrong_size = good;
  wrong_size.size_bytes = 8;  // the codes alone, without scales and zeros
  EXPECT_THAT(std::string(create(wrong_size).message()),
              HasSubstr("w.bin: tensor q [2, 7] q4: size_bytes must be 18 "
                        "bytes, spec says 8"));
  TensorSpec bad_scale = good;
  bad_scale.scale_dtype = static_cast<uint16_t>(DType::kF32);
  EXPECT_THAT(std::string(create(bad_scale).message()),
              HasSubstr("scale_dtype must be 2 (f16) or 3 (bf16), found 1"));
  TensorSpec bad_group = good;
  bad_group.group_size = 0;
  EXPECT_THAT(std::string(create(bad_group).message()),
              HasSubstr("group_size must be in 1..7"));
  TensorSpec float_with_group{"f", DType::kBF16, {4}, 8, 4, 0, 0};
  EXPECT_THAT(std::string(create(float_with_group).message()),
              HasSubstr("tensor f bf16: group_size must be 0"));
  TensorSpec bf16_scales = Spec("q8", Q8Sym(), 22);
  EXPECT_EQ(bf16_scales.scale_dtype, kBF16Code);
  EXPECT_TRUE(create(bf16_scales).ok());
}

}  // namespace
}  // namespace llmpack
