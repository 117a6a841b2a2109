#include "convert/package_writer.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "convert/progress.h"
#include "llmpack/checksum.h"
#include "llmpack/file_util.h"
#include "llmpack/package_layout.h"
#include "llmpack/status_macros.h"
#include "llmpack/tensor_file.h"
#include "llmpack/version.h"
#include "tokenizer/convert_tokenizer.h"

namespace llmpack::convert {
namespace fs = std::filesystem;

namespace {

// Elements streamed per step: bounds the conversion buffer and the source
// pages resident at once to a few MB whatever the tensor size.
constexpr size_t kChunkElements = 4 << 20;

const char* RoleOf(format::FileKind kind) {
  switch (kind) {
    case format::FileKind::kEmbedding:
      return "embedding";
    case format::FileKind::kBlock:
      return "block";
    case format::FileKind::kLm:
      return "lm";
  }
  return "unknown";
}

// The source tensor for a package tensor; tied models reuse the embedding.
std::string SourceNameFor(const ModelConfig& config, const ExpectedFile& file,
                          const ExpectedTensor& tensor) {
  if (config.tie_word_embeddings && tensor.name == kLmHead) {
    return "model.embed_tokens.weight";
  }
  return HuggingFaceTensorName(file, tensor);
}

// Streams one tensor in bounded chunks, converting float dtypes if needed
// (quantized tensors pass through unchanged), and tells the source which bytes
// are consumed so their pages can be dropped.
absl::Status StreamTensor(const std::string& hf_name, const SourceTensor& src,
                          DType out_dtype, TensorSource& source,
                          TensorFileWriter& writer, ProgressLine& progress) {
  if (src.dtype == out_dtype) {
    constexpr size_t kChunkBytes = kChunkElements * 4;
    for (size_t start = 0; start < src.data.size(); start += kChunkBytes) {
      const size_t n = std::min(kChunkBytes, src.data.size() - start);
      RETURN_IF_ERROR(writer.Append(src.data.subspan(start, n)));
      source.Consumed(hf_name, start, n);
      progress.Add(n);
    }
    return absl::OkStatus();
  }
  const size_t in_size = DTypeSize(src.dtype);
  const size_t out_size = DTypeSize(out_dtype);
  const size_t count = src.data.size() / in_size;
  std::vector<uint8_t> buffer(std::min(count, kChunkElements) * out_size);
  for (size_t start = 0; start < count; start += kChunkElements) {
    const size_t n = std::min(kChunkElements, count - start);
    const uint8_t* in = src.data.data() + start * in_size;
    RETURN_IF_ERROR(
        ConvertElements(src.dtype, in, out_dtype, buffer.data(), n));
    RETURN_IF_ERROR(writer.Append({buffer.data(), n * out_size}));
    source.Consumed(hf_name, start * in_size, n * in_size);
    progress.Add(n * in_size);
  }
  return absl::OkStatus();
}

// The spec of a tensor the source holds quantized: written as it is, with
// its size checked against the format before anything is written.
absl::StatusOr<TensorSpec> QuantizedSpec(const ExpectedTensor& t,
                                         const SourceTensor& src,
                                         const WritePackageOptions& options) {
  if (options.output_dtype) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor ", src.name, " is ", DTypeName(src.dtype),
        " and cannot be converted to ", DTypeName(*options.output_dtype),
        "; quantized tensors are only written unchanged"));
  }
  absl::StatusOr<uint64_t> bytes = TensorDataBytes(
      src.dtype, t.shape, src.group_size, src.scale_dtype, src.quant_flags);
  if (!bytes.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("tensor ", src.name, " ",
                                                   DTypeName(src.dtype), ": ",
                                                   bytes.status().message()));
  }
  if (src.data.size() != *bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor ", src.name, " ", ShapeString(t.shape), " ",
                     DTypeName(src.dtype), " holds ", src.data.size(),
                     " bytes, expected ", *bytes));
  }
  return TensorSpec{t.name,         src.dtype,       t.shape,        *bytes,
                    src.group_size, src.scale_dtype, src.quant_flags};
}

absl::StatusOr<ManifestFile> WriteTensorFile(const ModelConfig& config,
                                             const ExpectedFile& file,
                                             const fs::path& dir,
                                             TensorSource& source,
                                             const WritePackageOptions& options,
                                             ProgressLine& progress) {
  std::vector<std::string> names;
  std::vector<SourceTensor> inputs;
  std::vector<TensorSpec> specs;
  for (const ExpectedTensor& t : file.tensors) {
    const std::string& src_name =
        names.emplace_back(SourceNameFor(config, file, t));
    absl::StatusOr<SourceTensor> src = source.Get(src_name);
    if (!src.ok()) {
      if (absl::IsNotFound(src.status())) {
        return absl::NotFoundError(absl::StrCat(
            "tensor ", src_name, " is missing from the checkpoint (needed for ",
            file.file_name, ")"));
      }
      return src.status();
    }
    if (src->shape != t.shape) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor ", src->name, " has shape ", ShapeString(src->shape),
          ", expected ", ShapeString(t.shape), " from the model config"));
    }
    if (IsQuantizedDType(src->dtype)) {
      ASSIGN_OR_RETURN(TensorSpec spec, QuantizedSpec(t, *src, options));
      specs.push_back(std::move(spec));
    } else {
      const DType out = options.output_dtype.value_or(src->dtype);
      specs.push_back({t.name, out, t.shape, FloatTensorBytes(out, t.shape)});
    }
    inputs.push_back(*std::move(src));
  }
  const fs::path path = dir / file.file_name;
  ASSIGN_OR_RETURN(auto writer, TensorFileWriter::Create(
                                    path, file.kind, file.block_index, specs));
  for (size_t i = 0; i < inputs.size(); ++i) {
    RETURN_IF_ERROR(StreamTensor(names[i], inputs[i], specs[i].dtype, source,
                                 *writer, progress));
    source.Release(names[i]);
  }
  inputs.clear();
  ASSIGN_OR_RETURN(uint64_t size, writer->Finish());
  // Checksum what is on disk, not what we meant to write.
  ASSIGN_OR_RETURN(uint64_t sum, ChecksumFile(path));
  return ManifestFile{file.file_name, RoleOf(file.kind), size, sum};
}

}  // namespace

absl::StatusOr<Manifest> WritePackage(const ModelConfig& config,
                                      const SourceInfo& source_info,
                                      TensorSource& source,
                                      const WritePackageOptions& options) {
  RETURN_IF_ERROR(ValidateModelConfig(config));
  if (options.output_dtype && !IsFloatDType(*options.output_dtype)) {
    return absl::InvalidArgumentError(
        "output dtype must be f32, f16 or bf16 (quantize with llmquant)");
  }
  ASSIGN_OR_RETURN(StagingDirectory staging,
                   StagingDirectory::Create(options.output_dir, options.force));
  Manifest manifest;
  manifest.tool_version = kToolVersion;
  manifest.source = source_info;
  manifest.config = config;
  manifest.weights_dtype = options.output_dtype
                               ? DTypeName(*options.output_dtype)
                               : source_info.dtype;
  for (const auto& [key, value] : options.manifest_extensions.items()) {
    manifest.extensions[key] = value;
  }

  if (!options.tokenizer_dir.empty()) {
    // First, so a bad tokenizer fails before gigabytes of weights are
    // written. Writes tokenizer.txt, lists it, and fills the chat template
    // and the BOS/stop ids the tokenizer files declare.
    const absl::Status s = tokenizer::AddTokenizerToPackage(
        options.tokenizer_dir, staging.path(), &manifest);
    if (!s.ok() && !absl::IsNotFound(s)) return s;
    RETURN_IF_ERROR(ValidateModelConfig(manifest.config));
  }
  ProgressLine progress("llmconvert", source.TotalBytes(),
                        options.show_progress);
  for (const ExpectedFile& file : ExpectedPackageFiles(config)) {
    ASSIGN_OR_RETURN(ManifestFile written,
                     WriteTensorFile(config, file, staging.path(), source,
                                     options, progress));
    manifest.files.push_back(std::move(written));
  }
  progress.Finish();
  // Checksums were taken from the files on disk as they were finished; a
  // last size check catches anything a later stage listed wrongly.
  RETURN_IF_ERROR(VerifyPackageFiles(staging.path(), manifest,
                                     /*verify_checksums=*/false));
  RETURN_IF_ERROR(WriteManifest(staging.path(), manifest));
  RETURN_IF_ERROR(staging.Commit());
  return manifest;
}

}  // namespace llmpack::convert
