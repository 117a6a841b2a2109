// What `llmconvert` does, as one library call: pick the converter for the
// input (Hugging Face folder or ONNX file), run it, and summarize.
#ifndef LLMPACK_COMMANDS_CONVERT_COMMAND_H_
#define LLMPACK_COMMANDS_CONVERT_COMMAND_H_

#include <cstdint>
#include <filesystem>
#include <string>

#include "absl/status/statusor.h"
#include "llmpack/manifest.h"
#include "nlohmann/json.hpp"

namespace llmpack {

struct ConvertRequest {
  std::filesystem::path input;   // HF folder or .onnx file
  std::filesystem::path output;  // package directory to create
  std::string dtype = "keep";    // keep | f32 | f16 | bf16
  bool force = false;
  bool progress = true;  // progress line when stderr is a terminal
};

struct ConvertSummary {
  Manifest manifest;
  std::filesystem::path output;
  double seconds = 0;
  uint64_t bytes_written = 0;  // sum of package file sizes
};

absl::StatusOr<ConvertSummary> RunConvert(const ConvertRequest& request);

std::string ConvertSummaryText(const ConvertSummary& summary);
nlohmann::json ConvertSummaryJson(const ConvertSummary& summary);

}  // namespace llmpack

#endif  // LLMPACK_COMMANDS_CONVERT_COMMAND_H_
