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

// j as an int64. Unlike j.get<int64_t>(), refuses floats (1e300 would convert
// with undefined behaviour) as well as non-numbers: throws
// nlohmann::json::type_error, for parsers that already turn JSON exceptions
// into a status.
int64_t JsonInt(const nlohmann::json& j);

}  // namespace llmpack

#endif  // LLMPACK_JSON_FILE_H_
