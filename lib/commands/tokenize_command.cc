#include "commands/tokenize_command.h"

#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "llmpack/file_util.h"
#include "llmpack/status_macros.h"
#include "llmpack/token_ids.h"
#include "tokenizer/tokenizer.h"

namespace llmpack::commands {
namespace {

namespace fs = std::filesystem;
using tokenizer::Tokenizer;

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadFrom(const fs::path& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    const fs::path txt = path / "tokenizer.txt";
    if (!fs::exists(txt, ec)) {
      return absl::NotFoundError(
          absl::StrCat(path.string(), ": package has no tokenizer.txt"));
    }
    return Tokenizer::Load(txt);
  }
  return Tokenizer::Load(path);
}

absl::StatusOr<std::string> TextArgument(const std::string& arg) {
  if (!arg.empty() && arg[0] == '@') return ReadFileToString(arg.substr(1));
  return arg;
}

}  // namespace

absl::StatusOr<std::string> TokenizeToJson(const fs::path& source,
                                           const std::string& text_or_at_file,
                                           bool add_special) {
  ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, LoadFrom(source));
  ASSIGN_OR_RETURN(std::string text, TextArgument(text_or_at_file));
  ASSIGN_OR_RETURN(const std::vector<int32_t> ids,
                   tokenizer->Encode(text, add_special));
  return absl::StrCat("[", absl::StrJoin(ids, ", "), "]");
}

absl::StatusOr<std::string> DetokenizeIds(const fs::path& source,
                                          const std::string& ids_or_at_file) {
  ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, LoadFrom(source));
  ASSIGN_OR_RETURN(std::string text, TextArgument(ids_or_at_file));
  ASSIGN_OR_RETURN(std::vector<int32_t> ids, ParseTokenIds(text, "token ids"));
  return tokenizer->Decode(ids);
}

}  // namespace llmpack::commands
