#include "runtime/package.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "llmpack/package_layout.h"
#include "llmpack/status_macros.h"

namespace llmpack::runtime {
namespace {

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
    if (!IsFloatDType(have->dtype)) {
      return absl::UnimplementedError(absl::StrCat(
          path, ": tensor ", want.name, " has dtype ", DTypeName(have->dtype),
          "; this runtime computes with f32, f16 and bf16 weights only"));
    }
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

bool Package::has_tokenizer() const {
  return manifest_.FindFile(kTokenizerFile) != nullptr;
}

}  // namespace llmpack::runtime
