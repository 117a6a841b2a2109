// What `llmconvert` does, as one library call: pick the converter for the
// input (Hugging Face folder or ONNX file), run it, and summarize.
#ifndef LLMPACK_COMMANDS_CONVERT_COMMAND_H_
#define LLMPACK_COMMANDS_CONVERT_COMMAND_H_

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "convert/synthetic_checkpoint.h"
#include "llmpack/manifest.h"
#include "nlohmann/json.hpp"

namespace llmpack::commands {

struct ConvertRequest {
  std::filesystem::path input;   // HF folder or .onnx file
  std::filesystem::path output;  // package directory to create
  std::string dtype = "keep";    // keep | f32 | f16 | bf16
  bool force = false;
  bool progress = true;  // progress line when stderr is a terminal
};

// `llmconvert --tokenizer-only`: only tokenizer.txt, from a checkpoint
// folder, a tokenizer.json / tokenizer.model, or a tiktoken ranks file.
struct TokenizerRequest {
  std::filesystem::path input;   // folder, tokenizer.json/.model, or ranks
  std::filesystem::path output;  // tokenizer.txt path to write
  // Set for tiktoken ranks files: the split regex ("llama3" selects Llama
  // 3's), special tokens as "TEXT=ID", BOS and stop ids.
  std::string tiktoken_pattern;
  std::vector<std::string> special_tokens;
  int32_t bos_id = -1;
  bool add_bos = false;
  std::vector<int32_t> stop_ids;
};

struct ConvertSummary {
  Manifest manifest;
  std::filesystem::path output;
  double seconds = 0;
  uint64_t bytes_written = 0;  // sum of package file sizes
};

absl::StatusOr<ConvertSummary> RunConvert(const ConvertRequest& request);
// Writes request.output and returns its size in bytes.
absl::StatusOr<uint64_t> RunConvertTokenizer(const TokenizerRequest& request);

// `llmsynth`: a Hugging Face checkpoint folder with seeded random weights.
absl::StatusOr<convert::SyntheticResult> RunSynthesize(
    const convert::SyntheticOptions& options);

std::string ConvertSummaryText(const ConvertSummary& summary);
nlohmann::json ConvertSummaryJson(const ConvertSummary& summary);

}  // namespace llmpack::commands

#endif  // LLMPACK_COMMANDS_CONVERT_COMMAND_H_
