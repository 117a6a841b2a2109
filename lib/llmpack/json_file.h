// The one JSON reader: whole files or text into nlohmann::json, with errors
// that name the source. Thread-safe: pure functions.
#ifndef LLMPACK_JSON_FILE_H_
#define LLMPACK_JSON_FILE_H_

#include <filesystem>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace llmpack {

// `context` names the source in the error ("<context>: malformed JSON").
absl::StatusOr<nlohmann::json> ParseJson(std::string_view text,
                                         const std::string& context);
absl::StatusOr<nlohmann::json> ReadJsonFile(const std::filesystem::path& path);

}  // namespace llmpack

#endif  // LLMPACK_JSON_FILE_H_
