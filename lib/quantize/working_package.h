// The float package sequential calibration runs on: a temporary copy of the
// input (hard links where possible) in which each file, once quantized, is
// replaced by its dequantized f32 values, so that calibrating layer l sees
// the activations the quantized layers before it will produce.
//
// Thread safety: not thread-safe; owned by one QuantizePackage run.
#ifndef LLMPACK_QUANTIZE_WORKING_PACKAGE_H_
#define LLMPACK_QUANTIZE_WORKING_PACKAGE_H_

#include <filesystem>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "formats/tensor_file_format.h"
#include "llmpack/file_util.h"
#include "llmpack/manifest.h"

namespace llmpack::quantize {

// Writes the tensor file `src` to `dst` with every tensor as f32 (quantized
// tensors dequantized by the reference codec). Returns the new file's entry
// (size and checksum) named `name` with `role`.
absl::StatusOr<ManifestFile> WriteDequantizedFile(
    const std::filesystem::path& src, const std::filesystem::path& dst,
    format::FileKind kind, const std::string& name, const std::string& role);

class WorkingPackage {
 public:
  // A copy of the package at `input` (described by `manifest`) in a locked
  // staging folder `.<name>.work-<hex>` beside `beside` (llmpack/staging.h);
  // removed with its contents when the object is destroyed, or by the next
  // run's cleanup if this one is killed.
  static absl::StatusOr<WorkingPackage> Create(
      const std::filesystem::path& input, const Manifest& manifest,
      const std::filesystem::path& beside);

  const std::filesystem::path& dir() const { return staging_.path(); }
  // Replaces tensor file `name` by the dequantization of `quantized_file`.
  absl::Status Replace(const std::string& name,
                       const std::filesystem::path& quantized_file,
                       format::FileKind kind);

 private:
  StagingDirectory staging_;  // never committed
  Manifest manifest_;
};

}  // namespace llmpack::quantize

#endif  // LLMPACK_QUANTIZE_WORKING_PACKAGE_H_
