// manifest.json: what a package holds and where it came from
// (schema: formats/package_format.md, "manifest.json"). Plain data.
#ifndef LLMPACK_MANIFEST_H_
#define LLMPACK_MANIFEST_H_

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "llmpack/model_config.h"
#include "nlohmann/json.hpp"

namespace llmpack {

inline constexpr int kManifestFormatMajor = 1;
inline constexpr int kManifestFormatMinor = 0;

struct ManifestFile {
  std::string name;  // relative to the package directory
  std::string
      role;  // "tokenizer", "embedding", "block", "lm", "source-tokenizer"
  uint64_t size = 0;
  uint64_t checksum = 0;  // XXH3-64 of the whole file
};

struct SourceInfo {
  std::string path;                // as given to the converter
  std::string format;              // "huggingface-safetensors" or "onnx"
  std::string architecture;        // e.g. "LlamaForCausalLM"
  std::string dtype;               // dtype of the source weights
  uint64_t content_hash = 0;       // XXH3-64 over the source files' checksums
  std::vector<std::string> files;  // source files that were read
};

struct Manifest {
  int format_major = kManifestFormatMajor;
  int format_minor = kManifestFormatMinor;
  std::string tool_version;
  SourceInfo source;
  ModelConfig config;
  std::string weights_dtype;  // "f32"/"f16"/"bf16", or a quantization label
  std::vector<ManifestFile> files;
  // Free-form extension objects written by later stages (e.g. "tokenizer",
  // "quantization"); preserved on read/write.
  nlohmann::json extensions = nlohmann::json::object();

  const ManifestFile* FindFile(std::string_view name) const;
};

nlohmann::json ManifestToJson(const Manifest& manifest);
absl::StatusOr<Manifest> ManifestFromJson(const nlohmann::json& json,
                                          const std::string& context);
absl::StatusOr<Manifest> ReadManifest(const std::filesystem::path& package_dir);
absl::Status WriteManifest(const std::filesystem::path& package_dir,
                           const Manifest& manifest);

// Checks that every file listed exists with the recorded size and, if
// `verify_checksums`, the recorded checksum. Errors name the file.
absl::Status VerifyPackageFiles(const std::filesystem::path& package_dir,
                                const Manifest& manifest,
                                bool verify_checksums);

}  // namespace llmpack

#endif  // LLMPACK_MANIFEST_H_
