#include "runtime/package.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "llmpack/checksum.h"
#include "llmpack/package_layout.h"
#include "llmpack/status_macros.h"
#include "quant/codec.h"

namespace llmpack::runtime {
namespace {

// A tensor's dtype is usable by the forward pass: any float type, or q4/q8
// for matrices (Linear weights, the output projection, the embedding). The
// quantized layout and size_bytes were already checked by TensorFileReader.
absl::Status CheckComputeDType(const std::string& path, const TensorInfo& t) {
  if (IsFloatDType(t.dtype)) return absl::OkStatus();
  const bool quantized = t.dtype == DType::kQ4 || t.dtype == DType::kQ8;
  if (!quantized) {
    return absl::UnimplementedError(absl::StrCat(
        path, ": tensor ", t.name, " has dtype ", DTypeName(t.dtype),
        "; this runtime computes with f32, f16, bf16, q8 and q4 weights"));
  }
  if (t.shape.size() != 2) {
    return absl::UnimplementedError(absl::StrCat(
        path, ": tensor ", t.name, " of shape ", ShapeString(t.shape), " is ",
        DTypeName(t.dtype),
        "; only matrices may be quantized (norms and biases stay float)"));
  }
  return absl::OkStatus();
}

// The manifest's checksum check (as VerifyPackageFiles words it).
absl::Status CompareChecksum(const std::filesystem::path& path, uint64_t sum,
                             const ManifestFile& listed) {
  if (sum == listed.checksum) return absl::OkStatus();
  return absl::DataLossError(absl::StrCat(
      path.string(), ": checksum ", ChecksumToHex(sum),
      " does not match the manifest's ", ChecksumToHex(listed.checksum)));
}

absl::StatusOr<int64_t> ModificationTimeNs(const ReadOnlyFile& file,
                                           uint64_t* size) {
  struct stat st;
  if (::fstat(file.fd(), &st) != 0) {
    return absl::DataLossError(absl::StrCat(
        file.path().string(), ": cannot stat: ", std::strerror(errno)));
  }
  *size = static_cast<uint64_t>(st.st_size);
  return int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
}

// Opens one tensor file, verifies its size and (if asked) checksum against
// the manifest through the descriptor it keeps, and checks it holds exactly
// the expected tensors. `mtime_ns` receives the modification time seen
// before hashing, so a later write shows up in Package::CheckUnchanged.
absl::StatusOr<TensorFileReader> OpenChecked(const std::filesystem::path& dir,
                                             const Manifest& manifest,
                                             const ExpectedFile& expected,
                                             bool verify_checksum,
                                             int64_t* mtime_ns) {
  const ManifestFile* listed = manifest.FindFile(expected.file_name);
  if (listed == nullptr) {
    return absl::NotFoundError(
        absl::StrCat((dir / kManifestFile).string(), ": the config needs file ",
                     expected.file_name, " but the manifest does not list it"));
  }
  ASSIGN_OR_RETURN(ReadOnlyFile file,
                   ReadOnlyFile::Open(dir / expected.file_name));
  uint64_t size = 0;
  ASSIGN_OR_RETURN(*mtime_ns, ModificationTimeNs(file, &size));
  if (size != listed->size || file.size() != listed->size) {
    return absl::DataLossError(absl::StrCat(file.path().string(), ": size is ",
                                            size, " bytes, manifest says ",
                                            listed->size));
  }
  if (verify_checksum) {
    ASSIGN_OR_RETURN(uint64_t sum, ChecksumFile(file));
    RETURN_IF_ERROR(CompareChecksum(file.path(), sum, *listed));
  }
  ASSIGN_OR_RETURN(TensorFileReader reader,
                   TensorFileReader::Open(std::move(file), expected.kind));
  const std::string path = reader.path().string();
  if (reader.block_index() != expected.block_index) {
    return absl::DataLossError(absl::StrCat(path, ": header says block index ",
                                            reader.block_index(), ", expected ",
                                            expected.block_index));
  }
  for (const ExpectedTensor& want : expected.tensors) {
    ASSIGN_OR_RETURN(const TensorInfo* have, reader.Get(want.name));
    if (have->shape != want.shape) {
      return absl::DataLossError(absl::StrCat(
          path, ": tensor ", want.name, " has shape ", ShapeString(have->shape),
          " but the manifest's config implies ", ShapeString(want.shape)));
    }
    RETURN_IF_ERROR(CheckComputeDType(path, *have));
  }
  if (reader.tensors().size() != expected.tensors.size()) {
    for (const TensorInfo& t : reader.tensors()) {
      bool known = false;
      for (const ExpectedTensor& want : expected.tensors) {
        known = known || want.name == t.name;
      }
      if (!known) {
        return absl::DataLossError(
            absl::StrCat(path, ": unexpected tensor ", t.name,
                         " (not part of the layout for this config)"));
      }
    }
  }
  return reader;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Package>> Package::Open(
    const std::filesystem::path& dir, const PackageOptions& options) {
  auto package = std::unique_ptr<Package>(new Package());
  package->dir_ = dir;
  ASSIGN_OR_RETURN(package->manifest_, ReadManifest(dir));
  const std::string manifest_path = (dir / kManifestFile).string();
  absl::Status valid = ValidateModelConfig(package->manifest_.config);
  if (!valid.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(manifest_path, ": ", std::string(valid.message())));
  }
  // Every listed file exists with its listed size; tensor files are then
  // hashed through the descriptor the runtime keeps reading from, the others
  // (tokenizer.txt) by path.
  RETURN_IF_ERROR(VerifyPackageFiles(dir, package->manifest_,
                                     /*verify_checksums=*/false));
  const std::vector<ExpectedFile> expected_files =
      ExpectedPackageFiles(package->manifest_.config);
  if (options.verify_checksums) {
    for (const ManifestFile& f : package->manifest_.files) {
      bool tensor_file = false;
      for (const ExpectedFile& e : expected_files) {
        tensor_file = tensor_file || e.file_name == f.name;
      }
      if (tensor_file) continue;
      ASSIGN_OR_RETURN(uint64_t sum, ChecksumFile(dir / f.name));
      RETURN_IF_ERROR(CompareChecksum(dir / f.name, sum, f));
    }
  }
  for (const ExpectedFile& expected : expected_files) {
    Stamp stamp;
    ASSIGN_OR_RETURN(TensorFileReader reader,
                     OpenChecked(dir, package->manifest_, expected,
                                 options.verify_checksums, &stamp.mtime_ns));
    stamp.size = reader.file().size();
    switch (expected.kind) {
      case format::FileKind::kEmbedding:
        package->embedding_ = std::move(reader);
        package->embedding_stamp_ = stamp;
        break;
      case format::FileKind::kBlock:
        package->blocks_.push_back(std::move(reader));
        package->block_stamps_.push_back(stamp);
        break;
      case format::FileKind::kLm:
        package->lm_ = std::move(reader);
        package->lm_stamp_ = stamp;
        break;
    }
  }
  return package;
}

absl::Status Package::CheckUnchanged(const TensorFileReader& file) const {
  const Stamp* stamp = nullptr;
  if (&file == &embedding_) stamp = &embedding_stamp_;
  if (&file == &lm_) stamp = &lm_stamp_;
  for (size_t i = 0; i < blocks_.size(); ++i) {
    if (&file == &blocks_[i]) stamp = &block_stamps_[i];
  }
  if (stamp == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(file.path().string(), ": not a tensor file of package ",
                     dir_.string()));
  }
  uint64_t size = 0;
  ASSIGN_OR_RETURN(int64_t mtime_ns, ModificationTimeNs(file.file(), &size));
  if (size != stamp->size) {
    return absl::DataLossError(absl::StrCat(
        file.path().string(), ": changed while in use: ", stamp->size,
        " bytes when the package was opened, now ", size,
        " (truncated or appended to); packages must not be modified while a "
        "model reads them"));
  }
  if (mtime_ns != stamp->mtime_ns) {
    return absl::DataLossError(absl::StrCat(
        file.path().string(),
        ": changed while in use: written to after the package was opened and "
        "verified (modification time changed); packages must not be modified "
        "while a model reads them"));
  }
  return absl::OkStatus();
}

absl::Status Package::CheckUnchanged() const {
  RETURN_IF_ERROR(CheckUnchanged(embedding_));
  for (const TensorFileReader& block : blocks_) {
    RETURN_IF_ERROR(CheckUnchanged(block));
  }
  return CheckUnchanged(lm_);
}

quant::QuantFormat QuantFormatOf(const TensorInfo& t) {
  quant::QuantFormat format;
  format.dtype = t.dtype;
  format.group_size = t.group_size;
  format.scale_dtype = static_cast<DType>(t.scale_dtype);
  format.zero_point = (t.quant_flags & format::kQuantFlagZeroPoint) != 0;
  return format;
}

WeightMatrix MatrixView(const TensorInfo& t, const uint8_t* data) {
  WeightMatrix m;
  m.dtype = t.dtype;
  m.data = data;
  m.rows = t.shape[0];
  m.cols = t.shape[1];
  if (m.quantized()) m.layout = *quant::MakeRowLayout(QuantFormatOf(t), m.cols);
  return m;
}

bool Package::has_tokenizer() const {
  return manifest_.FindFile(kTokenizerFile) != nullptr;
}

}  // namespace llmpack::runtime
