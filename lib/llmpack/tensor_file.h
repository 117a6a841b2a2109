// Reading and writing llmpack tensor files (layout: formats/package_format.md
// and formats/tensor_file_format.h).
#ifndef LLMPACK_TENSOR_FILE_H_
#define LLMPACK_TENSOR_FILE_H_

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "formats/tensor_file_format.h"
#include "llmpack/dtype.h"
#include "llmpack/file_util.h"

namespace llmpack {

// One directory entry, decoded and validated.
struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t offset = 0;      // from file start
  uint64_t size_bytes = 0;  // data bytes
  uint64_t checksum = 0;    // XXH3-64 of the data bytes
  uint32_t group_size = 0;  // quantized types only
  uint16_t scale_dtype = 0;
  uint16_t quant_flags = 0;

  int64_t num_elements() const;
  // Rows as the format counts them: the product of all dims but the last.
  int64_t num_rows() const;
  // Bytes of one row (the innermost dimension): cols * element size for float
  // types, format::QuantRowBytes for q8/q4 (rows are contiguous in both, so
  // disk-embedding reads work for int8 rows too). 0 only for a quantized
  // layout with group_size 0, which the reader refuses.
  uint64_t row_bytes() const;
};

// What a writer is told before any data arrives, so offsets are fixed up
// front and data streams straight to disk.
struct TensorSpec {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t size_bytes = 0;  // must equal TensorDataBytes of the fields below
  uint32_t group_size = 0;
  uint16_t scale_dtype = 0;
  uint16_t quant_flags = 0;
};

// "[4096, 256]": a shape as error messages print it.
std::string ShapeString(absl::Span<const int64_t> shape);

// Bytes a float tensor of this dtype and shape occupies (float types only,
// like DTypeSize).
uint64_t FloatTensorBytes(DType dtype, absl::Span<const int64_t> shape);

// Checks a tensor's layout fields against formats/package_format.md and
// returns the exact size_bytes they imply: elements * element size for float
// types (whose group_size, scale_dtype and quant_flags must be 0), rows *
// format::QuantRowBytes for q8/q4 (group_size in 1..cols, scale_dtype f16 or
// bf16, only known quant_flags bits). Errors name the field, the expected
// value and the one found; callers prefix the file and tensor. Shapes whose
// byte count overflows 64 bits are refused.
absl::StatusOr<uint64_t> TensorDataBytes(DType dtype,
                                         absl::Span<const int64_t> shape,
                                         uint32_t group_size,
                                         uint16_t scale_dtype,
                                         uint16_t quant_flags);

// Streams tensors into a new file in the declared order. Not thread-safe.
class TensorFileWriter {
 public:
  static absl::StatusOr<std::unique_ptr<TensorFileWriter>> Create(
      const std::filesystem::path& path, format::FileKind kind,
      int32_t block_index, std::vector<TensorSpec> specs);
  ~TensorFileWriter();

  // Appends data of the current tensor; a tensor may arrive in many pieces.
  // Moves on to the next tensor once size_bytes have been written.
  absl::Status Append(absl::Span<const uint8_t> bytes);
  // Verifies every tensor is complete, writes the directory and header, and
  // closes the file. Returns the total file size.
  absl::StatusOr<uint64_t> Finish();

 private:
  TensorFileWriter() = default;
  absl::Status WriteAt(uint64_t offset, const void* data, size_t size);

  std::filesystem::path path_;
  int fd_ = -1;
  format::FileHeader header_{};
  std::vector<format::TensorEntry> entries_;
  std::vector<std::unique_ptr<class StreamingChecksum>> sums_;
  size_t current_ = 0;  // index of the tensor receiving data
  uint64_t current_written_ = 0;
};

// Parses and validates header and directory of a tensor file: every offset
// and size is checked against the file size before it is trusted.
// Thread-safety: const methods may be called concurrently.
class TensorFileReader {
 public:
  // `expected_kind` (if not 0) must match the header's file kind.
  static absl::StatusOr<TensorFileReader> Open(
      const std::filesystem::path& path,
      format::FileKind expected_kind = static_cast<format::FileKind>(0));
  // The same for a file the caller already opened (and perhaps checksummed
  // through the same descriptor, so what was verified is what is read).
  static absl::StatusOr<TensorFileReader> Open(
      ReadOnlyFile file,
      format::FileKind expected_kind = static_cast<format::FileKind>(0));

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* Find(std::string_view name) const;
  // Like Find, but returns NotFound naming the file and tensor.
  absl::StatusOr<const TensorInfo*> Get(std::string_view name) const;
  format::FileKind kind() const { return kind_; }
  int32_t block_index() const { return block_index_; }
  const ReadOnlyFile& file() const { return file_; }
  const std::filesystem::path& path() const { return file_.path(); }

  // Reads a tensor's bytes into dst (dst.size() must equal size_bytes) and,
  // if asked, verifies its checksum.
  absl::Status ReadTensor(const TensorInfo& tensor, absl::Span<uint8_t> dst,
                          bool verify_checksum) const;
  // Reads `count` rows starting at `row` (disk embedding); works for float
  // and quantized tensors alike (row_bytes() each).
  absl::Status ReadRows(const TensorInfo& tensor, int64_t row, int64_t count,
                        absl::Span<uint8_t> dst) const;

 private:
  ReadOnlyFile file_;
  format::FileKind kind_{};
  int32_t block_index_ = -1;
  std::vector<TensorInfo> tensors_;
};

}  // namespace llmpack

#endif  // LLMPACK_TENSOR_FILE_H_
