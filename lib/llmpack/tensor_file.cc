#include "llmpack/tensor_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "llmpack/checksum.h"
#include "llmpack/mapped_file.h"
#include "llmpack/status_macros.h"

namespace llmpack {
namespace fs = std::filesystem;
using format::FileHeader;
using format::TensorEntry;

namespace {

uint64_t AlignUp(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

// a * b, or false when it does not fit in 62 bits (file sizes stay far below).
bool MulFits(uint64_t a, uint64_t b, uint64_t* out) {
  constexpr uint64_t kLimit = uint64_t{1} << 62;
  if (b != 0 && a > kLimit / b) return false;
  *out = a * b;
  return true;
}

absl::Status CheckZeroField(const char* field, uint64_t found, DType dtype) {
  if (found == 0) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(field, " must be 0 for float type ", DTypeName(dtype),
                   ", found ", found));
}

// Tensors' data may not share bytes (a write through one would change the
// other, and checksums would vouch for both), and the file ends exactly at
// the end of the last tensor: nothing hides after it.
absl::Status CheckDataLayout(const std::string& where,
                             const std::vector<TensorInfo>& tensors,
                             uint64_t file_size) {
  std::vector<const TensorInfo*> by_offset;
  for (const TensorInfo& t : tensors) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const TensorInfo* a, const TensorInfo* b) {
              return a->offset < b->offset;
            });
  uint64_t end = sizeof(FileHeader);
  for (size_t i = 0; i < by_offset.size(); ++i) {
    const TensorInfo& t = *by_offset[i];
    if (i > 0 && t.offset < end) {
      return absl::DataLossError(
          absl::StrCat(where, ": tensor ", t.name, " data [", t.offset, ", +",
                       t.size_bytes, ") overlaps tensor ",
                       by_offset[i - 1]->name, " (ends at ", end, ")"));
    }
    end = std::max(end, t.offset + t.size_bytes);
  }
  if (!tensors.empty() && end != file_size) {
    return absl::DataLossError(absl::StrCat(
        where, ": ", file_size - end,
        " trailing bytes after the last tensor, which ends at ", end));
  }
  return absl::OkStatus();
}

// The gap a block file leaves after its directory so that it ends at a whole
// 2 MiB piece (package_format.md, "Block file padding"); 0 when the file is
// smaller than a piece, the gap would break 64-byte alignment (the last
// tensor's size is not a multiple of 64), or it would add more than half a
// piece or 1/kMaxBlockPaddingFraction of the file.
// The writer's piece is the one the runtime maps with one entry.
static_assert(format::kBlockPieceBytes == MappedFile::kHugePageBytes);
uint64_t BlockPadding(uint64_t unpadded_size) {
  const uint64_t pad =
      AlignUp(unpadded_size, format::kBlockPieceBytes) - unpadded_size;
  if (unpadded_size < format::kBlockPieceBytes ||
      pad % format::kDataAlignment != 0 ||
      pad > format::kMaxBlockPaddingBytes ||
      pad > unpadded_size / format::kMaxBlockPaddingFraction) {
    return 0;
  }
  return pad;
}

}  // namespace

std::string ShapeString(absl::Span<const int64_t> shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

int64_t TensorInfo::num_elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

int64_t TensorInfo::num_rows() const {
  int64_t n = 1;
  for (size_t i = 0; i + 1 < shape.size(); ++i) n *= shape[i];
  return n;
}

uint64_t TensorInfo::row_bytes() const {
  if (shape.empty()) return 0;
  const uint64_t cols = static_cast<uint64_t>(shape.back());
  if (IsFloatDType(dtype)) return cols * DTypeSize(dtype);
  if (group_size == 0) return 0;
  return format::QuantRowBytes(
      dtype, cols, group_size,
      (quant_flags & format::kQuantFlagZeroPoint) != 0);
}

uint64_t FloatTensorBytes(DType dtype, absl::Span<const int64_t> shape) {
  uint64_t n = DTypeSize(dtype);
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

absl::StatusOr<uint64_t> TensorDataBytes(DType dtype,
                                         absl::Span<const int64_t> shape,
                                         uint32_t group_size,
                                         uint16_t scale_dtype,
                                         uint16_t quant_flags) {
  if (shape.empty()) {
    return absl::InvalidArgumentError("shape must have at least one dim");
  }
  for (int64_t d : shape) {
    if (d < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("dims must be positive, found ", ShapeString(shape)));
    }
  }
  const uint64_t cols = static_cast<uint64_t>(shape.back());
  uint64_t rows = 1;
  for (size_t i = 0; i + 1 < shape.size(); ++i) {
    if (!MulFits(rows, static_cast<uint64_t>(shape[i]), &rows)) {
      return absl::InvalidArgumentError(
          absl::StrCat("shape ", ShapeString(shape), " overflows"));
    }
  }
  uint64_t row_bytes = 0;
  if (IsFloatDType(dtype)) {
    RETURN_IF_ERROR(CheckZeroField("group_size", group_size, dtype));
    RETURN_IF_ERROR(CheckZeroField("scale_dtype", scale_dtype, dtype));
    RETURN_IF_ERROR(CheckZeroField("quant_flags", quant_flags, dtype));
    if (!MulFits(cols, DTypeSize(dtype), &row_bytes)) {
      return absl::InvalidArgumentError(
          absl::StrCat("shape ", ShapeString(shape), " overflows"));
    }
  } else if (IsQuantizedDType(dtype)) {
    if (group_size < 1 || group_size > cols) {
      return absl::InvalidArgumentError(
          absl::StrCat("group_size must be in 1..", cols, " (the last dim of ",
                       ShapeString(shape), "), found ", group_size));
    }
    if (scale_dtype != static_cast<uint16_t>(DType::kF16) &&
        scale_dtype != static_cast<uint16_t>(DType::kBF16)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "scale_dtype must be ", static_cast<int>(DType::kF16), " (f16) or ",
          static_cast<int>(DType::kBF16), " (bf16), found ", scale_dtype));
    }
    if ((quant_flags & ~format::kQuantFlagsKnown) != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("quant_flags may only use bits 0x",
                       absl::Hex(format::kQuantFlagsKnown), ", found 0x",
                       absl::Hex(quant_flags)));
    }
    row_bytes =
        format::QuantRowBytes(dtype, cols, group_size,
                              (quant_flags & format::kQuantFlagZeroPoint) != 0);
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "dtype code ", static_cast<int>(dtype), " is not a known dtype"));
  }
  uint64_t total = 0;
  if (!MulFits(rows, row_bytes, &total)) {
    return absl::InvalidArgumentError(
        absl::StrCat("shape ", ShapeString(shape), " overflows"));
  }
  return total;
}

// ---------------------------------------------------------------- writer

absl::StatusOr<std::unique_ptr<TensorFileWriter>> TensorFileWriter::Create(
    const fs::path& path, format::FileKind kind, int32_t block_index,
    std::vector<TensorSpec> specs) {
  auto w = std::unique_ptr<TensorFileWriter>(new TensorFileWriter());
  w->path_ = path;
  uint64_t offset =
      AlignUp(sizeof(FileHeader) + specs.size() * sizeof(TensorEntry),
              format::kDataAlignment);
  for (const TensorSpec& s : specs) {
    if (s.name.empty() || s.name.size() >= format::kMaxTensorName) {
      return absl::InvalidArgumentError(
          absl::StrCat(path.string(), ": tensor name '", s.name,
                       "' must be 1..", format::kMaxTensorName - 1, " bytes"));
    }
    if (s.shape.empty() || s.shape.size() > format::kMaxRank) {
      return absl::InvalidArgumentError(
          absl::StrCat(path.string(), ": tensor ", s.name, " has rank ",
                       s.shape.size(), ", expected 1..", format::kMaxRank));
    }
    const absl::StatusOr<uint64_t> need = TensorDataBytes(
        s.dtype, s.shape, s.group_size, s.scale_dtype, s.quant_flags);
    if (!need.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path.string(), ": tensor ", s.name, " ",
                       DTypeName(s.dtype), ": ", need.status().message()));
    }
    if (s.size_bytes != *need) {
      return absl::InvalidArgumentError(absl::StrCat(
          path.string(), ": tensor ", s.name, " ", ShapeString(s.shape), " ",
          DTypeName(s.dtype), ": size_bytes must be ", *need,
          " bytes, spec says ", s.size_bytes));
    }
    TensorEntry e{};
    std::memcpy(e.name, s.name.data(), s.name.size());
    e.dtype = static_cast<uint16_t>(s.dtype);
    e.rank = static_cast<uint16_t>(s.shape.size());
    e.group_size = s.group_size;
    for (size_t i = 0; i < s.shape.size(); ++i) {
      e.dims[i] = static_cast<uint64_t>(s.shape[i]);
    }
    e.offset = offset;
    e.size_bytes = s.size_bytes;
    e.scale_dtype = s.scale_dtype;
    e.quant_flags = s.quant_flags;
    w->entries_.push_back(e);
    w->sums_.push_back(std::make_unique<StreamingChecksum>());
    offset = AlignUp(offset + s.size_bytes, format::kDataAlignment);
  }
  if (kind == format::FileKind::kBlock && !w->entries_.empty()) {
    const uint64_t pad =
        BlockPadding(w->entries_.back().offset + w->entries_.back().size_bytes);
    // The gap is never written: the new file reads zeros there.
    for (TensorEntry& e : w->entries_) e.offset += pad;
  }
  FileHeader& h = w->header_;
  std::memcpy(h.magic, format::kTensorFileMagic, sizeof(h.magic));
  h.major_version = format::kTensorFileMajorVersion;
  h.minor_version = format::kTensorFileMinorVersion;
  h.file_kind = static_cast<uint32_t>(kind);
  h.tensor_count = static_cast<uint32_t>(specs.size());
  h.alignment = format::kDataAlignment;
  h.block_index = block_index;
  h.directory_offset = sizeof(FileHeader);
  h.directory_bytes = specs.size() * sizeof(TensorEntry);
  h.file_size = w->entries_.empty()
                    ? sizeof(FileHeader)
                    : w->entries_.back().offset + w->entries_.back().size_bytes;

  w->fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (w->fd_ < 0) {
    return absl::PermissionDeniedError(
        absl::StrCat(path.string(), ": cannot create: ", std::strerror(errno)));
  }
  return w;
}

TensorFileWriter::~TensorFileWriter() {
  if (fd_ >= 0) ::close(fd_);
}

absl::Status TensorFileWriter::WriteAt(uint64_t offset, const void* data,
                                       size_t size) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  while (size > 0) {
    const ssize_t n = ::pwrite(fd_, p, size, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return absl::DataLossError(absl::StrCat(
          path_.string(), ": write failed: ", std::strerror(errno)));
    }
    p += n;
    size -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return absl::OkStatus();
}

absl::Status TensorFileWriter::Append(absl::Span<const uint8_t> bytes) {
  while (!bytes.empty()) {
    while (current_ < entries_.size() &&
           current_written_ == entries_[current_].size_bytes) {
      ++current_;
      current_written_ = 0;
    }
    if (current_ >= entries_.size()) {
      return absl::InternalError(
          absl::StrCat(path_.string(), ": ", bytes.size(),
                       " bytes appended after the last declared tensor"));
    }
    TensorEntry& e = entries_[current_];
    const size_t n = static_cast<size_t>(
        std::min<uint64_t>(bytes.size(), e.size_bytes - current_written_));
    RETURN_IF_ERROR(WriteAt(e.offset + current_written_, bytes.data(), n));
    sums_[current_]->Update(bytes.data(), n);
    current_written_ += n;
    bytes.remove_prefix(n);
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> TensorFileWriter::Finish() {
  for (size_t i = 0; i < entries_.size(); ++i) {
    const bool complete =
        i < current_ ||
        (i == current_ && current_written_ == entries_[i].size_bytes);
    if (!complete && entries_[i].size_bytes > 0) {
      return absl::InternalError(absl::StrCat(
          path_.string(), ": tensor ", entries_[i].name, " is incomplete"));
    }
    entries_[i].checksum = sums_[i]->Digest();
  }
  header_.directory_checksum =
      Checksum64(entries_.data(), entries_.size() * sizeof(TensorEntry));
  RETURN_IF_ERROR(WriteAt(0, &header_, sizeof(header_)));
  RETURN_IF_ERROR(WriteAt(sizeof(header_), entries_.data(),
                          entries_.size() * sizeof(TensorEntry)));
  if (::ftruncate(fd_, static_cast<off_t>(header_.file_size)) != 0 ||
      ::fsync(fd_) != 0) {
    return absl::DataLossError(absl::StrCat(
        path_.string(), ": cannot finish file: ", std::strerror(errno)));
  }
  ::close(fd_);
  fd_ = -1;
  return header_.file_size;
}

// ---------------------------------------------------------------- reader

absl::StatusOr<TensorFileReader> TensorFileReader::Open(
    const fs::path& path, format::FileKind expected_kind) {
  ASSIGN_OR_RETURN(ReadOnlyFile file, ReadOnlyFile::Open(path));
  return Open(std::move(file), expected_kind);
}

absl::StatusOr<TensorFileReader> TensorFileReader::Open(
    ReadOnlyFile file, format::FileKind expected_kind) {
  TensorFileReader r;
  r.file_ = std::move(file);
  const std::string where = r.file_.path().string();
  FileHeader h;
  if (r.file_.size() < sizeof(h)) {
    return absl::DataLossError(absl::StrCat(
        where, ": file is ", r.file_.size(), " bytes, smaller than the ",
        sizeof(h), "-byte llmpack header (truncated?)"));
  }
  RETURN_IF_ERROR(
      r.file_.ReadAt(0, {reinterpret_cast<uint8_t*>(&h), sizeof(h)}));
  if (std::memcmp(h.magic, format::kTensorFileMagic, sizeof(h.magic)) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": not an llmpack tensor file (bad magic)"));
  }
  if (h.major_version != format::kTensorFileMajorVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat(where, ": format version ", h.major_version, ".",
                     h.minor_version, " is not supported (this build reads ",
                     format::kTensorFileMajorVersion, ".x)"));
  }
  if (h.file_kind < static_cast<uint32_t>(format::FileKind::kEmbedding) ||
      h.file_kind > static_cast<uint32_t>(format::FileKind::kLm)) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": file kind ", h.file_kind, " is not 1, 2 or 3"));
  }
  if (expected_kind != static_cast<format::FileKind>(0) &&
      h.file_kind != static_cast<uint32_t>(expected_kind)) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": file kind is ", h.file_kind, ", expected ",
                     static_cast<uint32_t>(expected_kind)));
  }
  if (h.alignment != format::kDataAlignment ||
      h.directory_offset != sizeof(FileHeader) ||
      h.directory_bytes !=
          static_cast<uint64_t>(h.tensor_count) * sizeof(TensorEntry)) {
    return absl::DataLossError(absl::StrCat(
        where, ": inconsistent header (alignment ", h.alignment,
        ", directory at ", h.directory_offset, " of ", h.directory_bytes,
        " bytes for ", h.tensor_count, " tensors)"));
  }
  if (h.reserved0 != 0) {
    return absl::DataLossError(absl::StrCat(
        where, ": header field reserved0 must be 0, found ", h.reserved0));
  }
  if (h.file_size != r.file_.size()) {
    return absl::DataLossError(absl::StrCat(
        where, ": header says the file is ", h.file_size, " bytes, found ",
        r.file_.size(), " (truncated or appended to)"));
  }
  if (h.directory_bytes > r.file_.size() - sizeof(FileHeader)) {
    return absl::DataLossError(
        absl::StrCat(where, ": tensor directory runs past the end of file"));
  }
  std::vector<TensorEntry> entries(h.tensor_count);
  RETURN_IF_ERROR(r.file_.ReadAt(
      h.directory_offset,
      {reinterpret_cast<uint8_t*>(entries.data()), h.directory_bytes}));
  if (Checksum64(entries.data(), h.directory_bytes) != h.directory_checksum) {
    return absl::DataLossError(
        absl::StrCat(where, ": tensor directory checksum mismatch"));
  }
  r.kind_ = static_cast<format::FileKind>(h.file_kind);
  r.block_index_ = h.block_index;
  for (const TensorEntry& e : entries) {
    TensorInfo t;
    const size_t len = strnlen(e.name, sizeof(e.name));
    if (len == 0 || len == sizeof(e.name)) {
      return absl::DataLossError(
          absl::StrCat(where, ": tensor name is empty or not terminated"));
    }
    t.name.assign(e.name, len);
    if (!IsKnownDType(e.dtype)) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": tensor ", t.name, " has unknown dtype code ", e.dtype));
    }
    t.dtype = static_cast<DType>(e.dtype);
    if (e.rank == 0 || e.rank > format::kMaxRank) {
      return absl::DataLossError(absl::StrCat(where, ": tensor ", t.name,
                                              " has invalid rank ", e.rank));
    }
    for (int i = 0; i < e.rank; ++i) {
      if (e.dims[i] == 0 || e.dims[i] > (uint64_t{1} << 40)) {
        return absl::DataLossError(absl::StrCat(
            where, ": tensor ", t.name, " has invalid dimension ", e.dims[i]));
      }
      t.shape.push_back(static_cast<int64_t>(e.dims[i]));
    }
    t.offset = e.offset;
    t.size_bytes = e.size_bytes;
    t.checksum = e.checksum;
    t.group_size = e.group_size;
    t.scale_dtype = e.scale_dtype;
    t.quant_flags = e.quant_flags;
    if (t.offset % format::kDataAlignment != 0 ||
        t.offset < h.directory_offset + h.directory_bytes ||
        t.offset > r.file_.size() || t.size_bytes > r.file_.size() - t.offset) {
      return absl::DataLossError(
          absl::StrCat(where, ": tensor ", t.name, " data [", t.offset, ", +",
                       t.size_bytes, ") lies outside the file (",
                       r.file_.size(), " bytes) or is misaligned"));
    }
    if (e.reserved0 != 0) {
      return absl::DataLossError(absl::StrCat(
          where, ": tensor ", t.name,
          ": directory field reserved0 must be 0, found ", e.reserved0));
    }
    for (int i = 0; i < 3; ++i) {
      if (e.reserved1[i] != 0) {
        return absl::DataLossError(absl::StrCat(
            where, ": tensor ", t.name, ": directory field reserved1[", i,
            "] must be 0, found ", e.reserved1[i]));
      }
    }
    const absl::StatusOr<uint64_t> need = TensorDataBytes(
        t.dtype, t.shape, t.group_size, t.scale_dtype, t.quant_flags);
    if (!need.ok()) {
      return absl::DataLossError(absl::StrCat(where, ": tensor ", t.name, " ",
                                              DTypeName(t.dtype), ": ",
                                              need.status().message()));
    }
    if (t.size_bytes != *need) {
      return absl::DataLossError(
          absl::StrCat(where, ": tensor ", t.name, " ", ShapeString(t.shape),
                       " ", DTypeName(t.dtype), ": size_bytes should be ",
                       *need, " bytes, directory says ", t.size_bytes));
    }
    if (r.Find(t.name) != nullptr) {
      return absl::DataLossError(
          absl::StrCat(where, ": tensor ", t.name, " is listed twice"));
    }
    r.tensors_.push_back(std::move(t));
  }
  RETURN_IF_ERROR(CheckDataLayout(where, r.tensors_, r.file_.size()));
  return r;
}

const TensorInfo* TensorFileReader::Find(std::string_view name) const {
  for (const TensorInfo& t : tensors_) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

absl::StatusOr<const TensorInfo*> TensorFileReader::Get(
    std::string_view name) const {
  if (const TensorInfo* t = Find(name)) return t;
  return absl::NotFoundError(absl::StrCat(path().string(), ": tensor ",
                                          std::string(name), " is missing"));
}

absl::Status TensorFileReader::ReadTensor(const TensorInfo& t,
                                          absl::Span<uint8_t> dst,
                                          bool verify_checksum) const {
  if (dst.size() != t.size_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(path().string(), ": tensor ", t.name, " is ", t.size_bytes,
                     " bytes, buffer is ", dst.size()));
  }
  RETURN_IF_ERROR(file_.ReadAt(t.offset, dst));
  if (verify_checksum && Checksum64(dst.data(), dst.size()) != t.checksum) {
    return absl::DataLossError(absl::StrCat(
        path().string(), ": checksum mismatch in tensor ", t.name));
  }
  return absl::OkStatus();
}

absl::Status TensorFileReader::ReadRows(const TensorInfo& t, int64_t row,
                                        int64_t count,
                                        absl::Span<uint8_t> dst) const {
  const uint64_t row_bytes = t.row_bytes();
  const int64_t rows = t.shape.empty() ? 0 : t.num_rows();
  if (row_bytes == 0 || row < 0 || count < 0 || row + count > rows) {
    return absl::OutOfRangeError(absl::StrCat(
        path().string(), ": rows [", row, ", ", row + count, ") of tensor ",
        t.name, " out of range (", rows, " rows)"));
  }
  if (dst.size() != row_bytes * static_cast<uint64_t>(count)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path().string(), ": row buffer of ", dst.size(),
                     " bytes, need ", row_bytes * count));
  }
  return file_.ReadAt(t.offset + row_bytes * static_cast<uint64_t>(row), dst);
}

}  // namespace llmpack
