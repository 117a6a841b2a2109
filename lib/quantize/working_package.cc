#include "quantize/working_package.h"

#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"
#include "llmpack/checksum.h"
#include "llmpack/status_macros.h"
#include "llmpack/tensor_file.h"
#include "quant/tensor_f32.h"

namespace llmpack::quantize {
namespace fs = std::filesystem;

absl::StatusOr<ManifestFile> WriteDequantizedFile(const fs::path& src,
                                                  const fs::path& dst,
                                                  format::FileKind kind,
                                                  const std::string& name,
                                                  const std::string& role) {
  ASSIGN_OR_RETURN(TensorFileReader reader, TensorFileReader::Open(src, kind));
  std::vector<TensorSpec> specs;
  for (const TensorInfo& t : reader.tensors()) {
    specs.push_back({t.name, DType::kF32, t.shape,
                     FloatTensorBytes(DType::kF32, t.shape)});
  }
  ASSIGN_OR_RETURN(auto writer, TensorFileWriter::Create(
                                    dst, kind, reader.block_index(), specs));
  for (const TensorInfo& t : reader.tensors()) {
    ASSIGN_OR_RETURN(std::vector<float> values,
                     quant::ReadTensorAsF32(reader, t));
    RETURN_IF_ERROR(writer->Append({reinterpret_cast<const uint8_t*>(
                                        values.data()),
                                    values.size() * sizeof(float)}));
  }
  ASSIGN_OR_RETURN(uint64_t size, writer->Finish());
  ASSIGN_OR_RETURN(uint64_t sum, ChecksumFile(dst));
  return ManifestFile{name, role, size, sum};
}

absl::StatusOr<WorkingPackage> WorkingPackage::Create(
    const fs::path& input, const Manifest& manifest, const fs::path& beside) {
  WorkingPackage work;
  ASSIGN_OR_RETURN(work.staging_,
                   StagingDirectory::Create(beside, /*replace_existing=*/true,
                                            /*kind=*/"work"));
  for (const ManifestFile& f : manifest.files) {
    const fs::path dst = work.dir() / f.name;
    std::error_code ec;
    fs::create_directories(dst.parent_path(), ec);
    fs::create_hard_link(input / f.name, dst, ec);
    if (ec) {
      ec.clear();
      fs::copy_file(input / f.name, dst, ec);
    }
    if (ec) {
      return absl::InternalError(absl::StrCat("cannot copy ",
                                              (input / f.name).string(), " to ",
                                              dst.string(), ": ", ec.message()));
    }
  }
  work.manifest_ = manifest;
  RETURN_IF_ERROR(WriteManifest(work.dir(), work.manifest_));
  return work;
}

absl::Status WorkingPackage::Replace(const std::string& name,
                                     const fs::path& quantized_file,
                                     format::FileKind kind) {
  const fs::path path = dir() / name;
  // Unlink first: the file may be a hard link to the input package, which
  // must not be written through.
  std::error_code ec;
  fs::remove(path, ec);
  for (ManifestFile& f : manifest_.files) {
    if (f.name != name) continue;
    ASSIGN_OR_RETURN(f, WriteDequantizedFile(quantized_file, path, kind, name,
                                             f.role));
    return WriteManifest(dir(), manifest_);
  }
  return absl::NotFoundError(
      absl::StrCat(name, " is not a file of the working package"));
}

}  // namespace llmpack::quantize
