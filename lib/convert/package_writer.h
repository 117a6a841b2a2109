// Writes a package from any tensor source (Hugging Face safetensors, ONNX):
// one output file at a time, into a staging directory renamed into place only
// after every file and checksum is written. Not thread-safe.
#ifndef LLMPACK_CONVERT_PACKAGE_WRITER_H_
#define LLMPACK_CONVERT_PACKAGE_WRITER_H_

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "llmpack/dtype.h"
#include "llmpack/manifest.h"
#include "llmpack/model_config.h"
#include "nlohmann/json.hpp"

namespace llmpack::convert {

// A source tensor. `data` stays valid until the source's Release() for this
// name (or the source's destruction). `owned` keeps converted data alive when
// the source had to produce it (e.g. an un-transposed ONNX weight).
struct SourceTensor {
  std::string name;  // as the source calls it, for error messages
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  absl::Span<const uint8_t> data;
  std::shared_ptr<const std::vector<uint8_t>> owned;
  // Quantized (q8/q4) tensors only, as in TensorSpec: `data` is already in
  // the package's row layout (formats/package_format.md) and is written
  // unchanged.
  uint32_t group_size = 0;
  uint16_t scale_dtype = 0;
  uint16_t quant_flags = 0;
};

// Supplies tensors by their Hugging Face name
// (e.g. "model.layers.0.self_attn.q_proj.weight"; see package_layout.h).
class TensorSource {
 public:
  virtual ~TensorSource() = default;
  // NotFound if the source has no such tensor.
  virtual absl::StatusOr<SourceTensor> Get(const std::string& hf_name) = 0;
  // The writer has consumed bytes [offset, offset + length) of this tensor;
  // a memory-mapped source may drop those pages so that even one huge tensor
  // (a 1 GB embedding) never has to be resident at once.
  virtual void Consumed(const std::string& hf_name, uint64_t offset,
                        uint64_t length) {}
  // The writer is done with this tensor; a source may drop its memory.
  virtual void Release(const std::string& hf_name) {}
  // Total bytes of tensor data, for progress reporting (0 if unknown).
  virtual uint64_t TotalBytes() const { return 0; }
};

struct WritePackageOptions {
  std::filesystem::path output_dir;
  bool force = false;  // replace an existing output_dir
  // nullopt: keep each tensor's dtype (quantized tensors pass through);
  // set: a float type for every tensor (quantized sources are refused).
  std::optional<DType> output_dtype;
  bool show_progress = false;  // progress line on stderr
  // Folder whose tokenizer files (tokenizer.json / tokenizer.model and their
  // config files) become tokenizer.txt; empty or tokenizer-less: none.
  std::filesystem::path tokenizer_dir;
  // Extension objects added to manifest.json (e.g. the ONNX import's
  // "onnx_import" record of which weights stayed quantized).
  nlohmann::json manifest_extensions = nlohmann::json::object();
};

// Validates every tensor's presence, dtype and shape against the config
// (tied models take lm_head from the embedding), writes all files, verifies
// checksums, writes manifest.json and renames the package into place.
// On error nothing is left at output_dir (an existing package is untouched).
absl::StatusOr<Manifest> WritePackage(const ModelConfig& config,
                                      const SourceInfo& source,
                                      TensorSource& tensors,
                                      const WritePackageOptions& options);

}  // namespace llmpack::convert

#endif  // LLMPACK_CONVERT_PACKAGE_WRITER_H_
