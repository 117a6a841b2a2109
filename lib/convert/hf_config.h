// Parses a Hugging Face config.json (transformers 4 and 5 styles) into the
// normalized ModelConfig. Pure functions; thread-safe.
#ifndef LLMPACK_CONVERT_HF_CONFIG_H_
#define LLMPACK_CONVERT_HF_CONFIG_H_

#include <filesystem>
#include <string>

#include "absl/status/statusor.h"
#include "llmpack/model_config.h"
#include "nlohmann/json.hpp"

namespace llmpack::convert {

// Architectures the converter and runtime support, e.g. "LlamaForCausalLM".
const std::vector<std::string>& SupportedArchitectures();

// `context` names the file in error messages.
absl::StatusOr<ModelConfig> ParseHuggingFaceConfig(const nlohmann::json& config,
                                                   const std::string& context);

// Reads <dir>/config.json and, when present, generation_config.json (stop
// ids). The chat template and the tokenizer's own stop ids are added by the
// tokenizer stage (tokenizer::AddTokenizerToPackage).
absl::StatusOr<ModelConfig> ReadHuggingFaceConfig(
    const std::filesystem::path& dir);

// The dtype the checkpoint declares ("dtype" or "torch_dtype"), or "".
std::string DeclaredDType(const nlohmann::json& config);

}  // namespace llmpack::convert

#endif  // LLMPACK_CONVERT_HF_CONFIG_H_
