#include "convert/hf_convert.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "convert/hf_config.h"
#include "llmpack/checksum.h"
#include "llmpack/file_util.h"
#include "llmpack/status_macros.h"
#include "nlohmann/json.hpp"

namespace llmpack::convert {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr char kSingleFile[] = "model.safetensors";
constexpr char kIndexFile[] = "model.safetensors.index.json";

// Shard names from the index, each checked to be a plain file name so an
// index cannot point outside the checkpoint folder.
absl::StatusOr<std::vector<std::string>> ShardsFromIndex(const fs::path& dir) {
  const fs::path index_path = dir / kIndexFile;
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(index_path));
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.contains("weight_map") ||
      !j["weight_map"].is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(
        index_path.string(), ": malformed index (no weight_map object)"));
  }
  std::set<std::string> shards;
  for (auto& [name, shard] : j["weight_map"].items()) {
    if (!shard.is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(index_path.string(), ": weight_map entry for ", name,
                       " is not a file name"));
    }
    const std::string file = shard.get<std::string>();
    if (file.empty() || file.find('/') != std::string::npos || file == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat(index_path.string(), ": shard name '", file,
                       "' must be a file inside the checkpoint folder"));
    }
    if (!fs::exists(dir / file)) {
      return absl::NotFoundError(
          absl::StrCat(index_path.string(), ": names shard ", file,
                       ", which is absent from ", dir.string()));
    }
    shards.insert(file);
  }
  return std::vector<std::string>(shards.begin(), shards.end());
}

}  // namespace

absl::StatusOr<std::unique_ptr<HuggingFaceCheckpoint>>
HuggingFaceCheckpoint::Open(const fs::path& dir) {
  auto ckpt = std::unique_ptr<HuggingFaceCheckpoint>(new HuggingFaceCheckpoint);
  ckpt->dir_ = dir;
  std::vector<std::string> names;
  if (fs::exists(dir / kIndexFile)) {
    ASSIGN_OR_RETURN(names, ShardsFromIndex(dir));
  } else if (fs::exists(dir / kSingleFile)) {
    names = {kSingleFile};
  } else {
    return absl::NotFoundError(
        absl::StrCat(dir.string(), ": no weights found (expected ", kSingleFile,
                     " or ", kIndexFile, ")"));
  }
  for (const std::string& name : names) {
    ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(dir / name));
    for (const auto& [tensor_name, tensor] : file->tensors()) {
      if (!ckpt->index_.emplace(tensor_name, Location{file.get(), &tensor})
               .second) {
        return absl::InvalidArgumentError(absl::StrCat(
            "tensor ", tensor_name, " appears in more than one shard (", name,
            " and another)"));
      }
      ckpt->total_bytes_ += tensor.size;
    }
    ckpt->files_.push_back(std::move(file));
  }
  return ckpt;
}

absl::StatusOr<SourceTensor> HuggingFaceCheckpoint::Get(
    const std::string& hf_name) {
  auto it = index_.find(hf_name);
  if (it == index_.end()) {
    return absl::NotFoundError(absl::StrCat("tensor ", hf_name, " not found"));
  }
  const auto& [file, tensor] = it->second;
  return SourceTensor{
      absl::StrCat(hf_name, " (", file->path().filename().string(), ")"),
      tensor->dtype, tensor->shape, file->Data(*tensor), nullptr};
}

void HuggingFaceCheckpoint::Consumed(const std::string& hf_name,
                                     uint64_t offset, uint64_t length) {
  auto it = index_.find(hf_name);
  if (it == index_.end()) return;
  it->second.file->ReleaseRange(*it->second.tensor, offset, length);
}

void HuggingFaceCheckpoint::Release(const std::string& hf_name) {
  auto it = index_.find(hf_name);
  if (it != index_.end()) it->second.file->Release(*it->second.tensor);
}

std::vector<std::string> HuggingFaceCheckpoint::WeightFiles() const {
  std::vector<std::string> names;
  if (fs::exists(dir_ / kIndexFile)) names.push_back(kIndexFile);
  for (const auto& f : files_) names.push_back(f->path().filename().string());
  return names;
}

std::string HuggingFaceCheckpoint::MainDType() const {
  std::map<DType, uint64_t> bytes;
  for (const auto& [name, loc] : index_)
    bytes[loc.tensor->dtype] += loc.tensor->size;
  DType best = DType::kF32;
  uint64_t most = 0;
  for (const auto& [dtype, n] : bytes) {
    if (n > most) best = dtype, most = n;
  }
  return DTypeName(best);
}

std::vector<fs::path> FindTokenizerFiles(const fs::path& dir) {
  std::vector<fs::path> found;
  for (const char* name : {"tokenizer.json", "tokenizer.model",
                           "tokenizer_config.json", "special_tokens_map.json",
                           "chat_template.jinja", "generation_config.json"}) {
    if (fs::is_regular_file(dir / name)) found.push_back(dir / name);
  }
  return found;
}

absl::StatusOr<uint64_t> HashSourceFiles(
    const fs::path& dir, const std::vector<std::string>& files) {
  StreamingChecksum combined;
  for (const std::string& name : files) {
    ASSIGN_OR_RETURN(uint64_t sum, ChecksumFile(dir / name));
    combined.Update(&sum, sizeof(sum));
  }
  return combined.Digest();
}

absl::StatusOr<Manifest> ConvertHuggingFace(const fs::path& input_dir,
                                            WritePackageOptions options) {
  if (!fs::is_directory(input_dir)) {
    return absl::NotFoundError(
        absl::StrCat(input_dir.string(), ": not a directory"));
  }
  if (IsSameOrInside(options.output_dir, input_dir) ||
      IsSameOrInside(input_dir, options.output_dir)) {
    return absl::InvalidArgumentError(
        absl::StrCat("refusing to write ", options.output_dir.string(),
                     ": it overlaps the input folder ", input_dir.string()));
  }
  ASSIGN_OR_RETURN(ModelConfig config, ReadHuggingFaceConfig(input_dir));
  ASSIGN_OR_RETURN(auto checkpoint, HuggingFaceCheckpoint::Open(input_dir));

  SourceInfo source;
  source.path = input_dir.string();
  source.format = "huggingface-safetensors";
  source.architecture = config.architecture;
  source.dtype = checkpoint->MainDType();
  source.files = {"config.json"};
  for (const std::string& f : checkpoint->WeightFiles())
    source.files.push_back(f);
  const std::vector<fs::path> tokenizer_files = FindTokenizerFiles(input_dir);
  for (const fs::path& f : tokenizer_files) {
    source.files.push_back(f.filename().string());
  }
  ASSIGN_OR_RETURN(source.content_hash,
                   HashSourceFiles(input_dir, source.files));
  options.tokenizer_dir = input_dir;
  return WritePackage(config, source, *checkpoint, options);
}

}  // namespace llmpack::convert
