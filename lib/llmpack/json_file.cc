#include "llmpack/json_file.h"

#include "absl/strings/str_cat.h"
#include "llmpack/file_util.h"
#include "llmpack/status_macros.h"

namespace llmpack {

absl::StatusOr<nlohmann::json> ParseJson(std::string_view text,
                                         const std::string& context) {
  nlohmann::json j = nlohmann::json::parse(text.begin(), text.end(), nullptr,
                                           /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return absl::InvalidArgumentError(
        absl::StrCat(context, ": malformed JSON"));
  }
  return j;
}

absl::StatusOr<nlohmann::json> ReadJsonFile(const std::filesystem::path& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return ParseJson(text, path.string());
}

int64_t JsonInt(const nlohmann::json& j) {
  if (!j.is_number_integer()) {
    throw nlohmann::json::type_error::create(
        302, absl::StrCat("expected an integer, found ", j.type_name()), &j);
  }
  return j.get<int64_t>();
}

}  // namespace llmpack
