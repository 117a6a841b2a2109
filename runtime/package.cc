#include "runtime/package.h"

#include <string>

#include "absl/strings/str_cat.h"
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

// Opens one tensor file and checks it holds exactly the expected tensors.
absl::StatusOr<TensorFileReader> OpenChecked(const std::filesystem::path& dir,
                                             const Manifest& manifest,
                                             const ExpectedFile& expected) {
  if (manifest.FindFile(expected.file_name) == nullptr) {
    return absl::NotFoundError(
        absl::StrCat((dir / kManifestFile).string(), ": the config needs file ",
                     expected.file_name, " but the manifest does not list it"));
  }
  ASSIGN_OR_RETURN(
      TensorFileReader reader,
      TensorFileReader::Open(dir / expected.file_name, expected.kind));
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
  RETURN_IF_ERROR(
      VerifyPackageFiles(dir, package->manifest_, options.verify_checksums));
  for (const ExpectedFile& expected :
       ExpectedPackageFiles(package->manifest_.config)) {
    ASSIGN_OR_RETURN(TensorFileReader reader,
                     OpenChecked(dir, package->manifest_, expected));
    switch (expected.kind) {
      case format::FileKind::kEmbedding:
        package->embedding_ = std::move(reader);
        break;
      case format::FileKind::kBlock:
        package->blocks_.push_back(std::move(reader));
        break;
      case format::FileKind::kLm:
        package->lm_ = std::move(reader);
        break;
    }
  }
  return package;
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
