// On-disk layout of llmpack tensor files (embedding.bin, block_NNN.bin,
// lm.bin). The prose specification is formats/package_format.md; this header
// is its machine-checked twin. All integers are little-endian; the structs are
// plain data read and written with memcpy on little-endian hosts only (the
// build refuses big-endian targets below).
#ifndef LLMPACK_FORMATS_TENSOR_FILE_FORMAT_H_
#define LLMPACK_FORMATS_TENSOR_FILE_FORMAT_H_

#include <bit>
#include <cstddef>
#include <cstdint>

namespace llmpack::format {

static_assert(std::endian::native == std::endian::little,
              "llmpack files are little-endian; big-endian hosts need byte "
              "swapping that is not implemented");

inline constexpr char kTensorFileMagic[8] = {'L', 'L', 'M', 'P',
                                             'A', 'C', 'K', '\0'};
inline constexpr uint16_t kTensorFileMajorVersion = 1;
inline constexpr uint16_t kTensorFileMinorVersion = 0;
// Every tensor's data starts at a multiple of this, counted from file start.
inline constexpr uint32_t kDataAlignment = 64;
// Block files are padded to a whole number of 2 MiB pieces when the gap is
// at most half a piece and 1/kMaxBlockPaddingFraction of the file
// (package_format.md, "Block file padding"): streaming maps each whole piece
// of the page cache with one page table entry and has to copy a partial last
// piece on every load.
inline constexpr uint64_t kBlockPieceBytes = uint64_t{2} << 20;
inline constexpr uint64_t kMaxBlockPaddingBytes = kBlockPieceBytes / 2;
inline constexpr uint64_t kMaxBlockPaddingFraction = 16;
static_assert(kBlockPieceBytes % kDataAlignment == 0,
              "a gap that completes a piece must keep tensors aligned");
inline constexpr size_t kMaxTensorName = 96;  // including the NUL terminator
inline constexpr size_t kMaxRank = 4;

// What a file holds; recorded so a file cannot be mistaken for another.
enum class FileKind : uint32_t {
  kEmbedding = 1,
  kBlock = 2,
  kLm = 3,
};

// Element types. Values are part of the format: never renumber.
enum class DTypeCode : uint16_t {
  kF32 = 1,
  kF16 = 2,
  kBF16 = 3,
  // Group-quantized types (layout in package_format.md, "Quantized tensors").
  // The directory entry's group_size and scale_dtype describe the groups.
  kQ8 = 16,  // signed int8 codes, one scale per group
  kQ4 = 17,  // unsigned 4-bit codes, two per byte, low nibble first
};

// Bits in TensorEntry::quant_flags. Every other bit is reserved (zero).
inline constexpr uint16_t kQuantFlagZeroPoint = 1u << 0;  // asymmetric
inline constexpr uint16_t kQuantFlagsKnown = kQuantFlagZeroPoint;
// Implicit zero point of symmetric q4 codes (0..15 stand for -8..7).
inline constexpr int kQ4SymmetricZero = 8;

// Bytes of one quantized row: codes, then 2-byte group scales, then (if
// asymmetric) zero points. See "Quantized tensors" in package_format.md.
constexpr uint64_t QuantGroupCount(uint64_t cols, uint64_t group_size) {
  return (cols + group_size - 1) / group_size;
}
constexpr uint64_t QuantRowBytes(DTypeCode dtype, uint64_t cols,
                                 uint64_t group_size, bool zero_point) {
  const uint64_t groups = QuantGroupCount(cols, group_size);
  const bool q4 = dtype == DTypeCode::kQ4;
  const uint64_t codes = q4 ? (cols + 1) / 2 : cols;
  const uint64_t zps = !zero_point ? 0 : (q4 ? (groups + 1) / 2 : groups);
  return codes + 2 * groups + zps;
}
// The worked examples of the specification.
static_assert(QuantRowBytes(DTypeCode::kQ4, 4096, 32, true) == 2368);
static_assert(QuantRowBytes(DTypeCode::kQ4, 4096, 32, true) * 8 * 1000 / 4096 ==
              4625);  // 4.625 bits per weight
static_assert(QuantRowBytes(DTypeCode::kQ4, 4096, 32, false) * 8 * 10 / 4096 ==
              45);  // 4.5
static_assert(QuantRowBytes(DTypeCode::kQ8, 4096, 128, false) * 8 * 1000 /
                  4096 ==
              8125);  // 8.125
static_assert(QuantRowBytes(DTypeCode::kQ4, 172, 32, true) == 86 + 12 + 3);
static_assert(QuantRowBytes(DTypeCode::kQ4, 7, 7, true) == 4 + 2 + 1);

struct FileHeader {
  char magic[8];                // kTensorFileMagic
  uint16_t major_version;       // readers reject a different major
  uint16_t minor_version;       // readers accept any minor (additive changes)
  uint32_t file_kind;           // FileKind
  uint32_t tensor_count;        // entries in the directory
  uint32_t alignment;           // kDataAlignment
  int32_t block_index;          // layer index for kBlock files, -1 otherwise
  uint32_t reserved0;           // zero
  uint64_t directory_offset;    // == sizeof(FileHeader)
  uint64_t directory_bytes;     // tensor_count * sizeof(TensorEntry)
  uint64_t directory_checksum;  // XXH3-64 of the directory bytes
  uint64_t file_size;           // total size of the file in bytes
};
static_assert(sizeof(FileHeader) == 64);
static_assert(offsetof(FileHeader, major_version) == 8);
static_assert(offsetof(FileHeader, file_kind) == 12);
static_assert(offsetof(FileHeader, tensor_count) == 16);
static_assert(offsetof(FileHeader, block_index) == 24);
static_assert(offsetof(FileHeader, directory_offset) == 32);
static_assert(offsetof(FileHeader, directory_checksum) == 48);
static_assert(offsetof(FileHeader, file_size) == 56);

struct TensorEntry {
  char name[kMaxTensorName];  // NUL-terminated, NUL-padded
  uint16_t dtype;             // DTypeCode
  uint16_t rank;              // 1..kMaxRank
  uint32_t group_size;        // elements per quantization group; 0 if float
  uint64_t dims[kMaxRank];    // outermost first; unused dims are 0
  uint64_t offset;            // from file start; multiple of alignment
  uint64_t size_bytes;        // bytes of this tensor's data (codes+scales+zp)
  uint64_t checksum;          // XXH3-64 of the data bytes
  uint16_t scale_dtype;       // DTypeCode of scales (quantized only), else 0
  uint16_t quant_flags;       // kQuantFlag* bits (quantized only), else 0
  uint32_t reserved0;         // zero
  uint64_t reserved1[3];      // zero
};
static_assert(sizeof(TensorEntry) == 192);
static_assert(offsetof(TensorEntry, dtype) == 96);
static_assert(offsetof(TensorEntry, dims) == 104);
static_assert(offsetof(TensorEntry, offset) == 136);
static_assert(offsetof(TensorEntry, checksum) == 152);
static_assert(offsetof(TensorEntry, scale_dtype) == 160);
static_assert(sizeof(FileHeader) % 64 == 0 && sizeof(TensorEntry) % 64 == 0,
              "header and directory keep data naturally aligned");

}  // namespace llmpack::format

#endif  // LLMPACK_FORMATS_TENSOR_FILE_FORMAT_H_
