// Converts a Hugging Face checkpoint folder (config.json + single-file or
// sharded safetensors) into an llmpack package.
#ifndef LLMPACK_CONVERT_HF_CONVERT_H_
#define LLMPACK_CONVERT_HF_CONVERT_H_

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "convert/package_writer.h"
#include "convert/safetensors.h"

namespace llmpack::convert {

// The tensors of a checkpoint folder, over memory-mapped safetensors files.
// Pages of a tensor are released once the writer is done with it, so
// resident memory stays near one layer. Not thread-safe.
class HuggingFaceCheckpoint : public TensorSource {
 public:
  // Opens model.safetensors, or the shards listed in
  // model.safetensors.index.json, validating every header.
  static absl::StatusOr<std::unique_ptr<HuggingFaceCheckpoint>> Open(
      const std::filesystem::path& dir);

  absl::StatusOr<SourceTensor> Get(const std::string& hf_name) override;
  void Consumed(const std::string& hf_name, uint64_t offset,
                uint64_t length) override;
  void Release(const std::string& hf_name) override;
  uint64_t TotalBytes() const override { return total_bytes_; }

  // Weight files read, relative to the folder, in a stable order.
  std::vector<std::string> WeightFiles() const;
  // The dtype most tensors have ("bf16", ...), for the manifest.
  std::string MainDType() const;

 private:
  struct Location {
    const SafetensorsFile* file;
    const SafetensorsTensor* tensor;
  };
  std::filesystem::path dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, Location> index_;
  uint64_t total_bytes_ = 0;
};

// Tokenizer files a checkpoint folder may carry (hashed into the manifest's
// source description; converted into tokenizer.txt).
std::vector<std::filesystem::path> FindTokenizerFiles(
    const std::filesystem::path& dir);

// Full conversion: config, weights, tokenizer files, manifest. Refuses an
// output directory that is the input or inside it.
absl::StatusOr<Manifest> ConvertHuggingFace(
    const std::filesystem::path& input_dir, WritePackageOptions options);

// XXH3-64 over the checksums of the given files (manifest source hash).
absl::StatusOr<uint64_t> HashSourceFiles(const std::filesystem::path& dir,
                                         const std::vector<std::string>& files);

}  // namespace llmpack::convert

#endif  // LLMPACK_CONVERT_HF_CONVERT_H_
