#include "tokenizer/tokenize_command.h"

#include <memory>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "llmpack/file_util.h"
#include "llmpack/status_macros.h"
#include "tokenizer/tokenizer.h"

namespace llmpack::tok {
namespace {

namespace fs = std::filesystem;

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
  const std::vector<int32_t> ids = tokenizer->Encode(text, add_special);
  return absl::StrCat("[", absl::StrJoin(ids, ", "), "]");
}

absl::StatusOr<std::string> DetokenizeIds(const fs::path& source,
                                          const std::string& ids_or_at_file) {
  ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, LoadFrom(source));
  ASSIGN_OR_RETURN(std::string text, TextArgument(ids_or_at_file));
  // Accepts "[1, 2]" as well as "1 2" or "1,2": brackets and commas are
  // separators like whitespace.
  for (char& c : text) {
    if (c == '[' || c == ']' || c == ',' || c == '\n' || c == '\t' ||
        c == '\r') {
      c = ' ';
    }
  }
  std::vector<int32_t> ids;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t start = text.find_first_not_of(' ', pos);
    if (start == std::string::npos) break;
    size_t end = text.find(' ', start);
    if (end == std::string::npos) end = text.size();
    const std::string word = text.substr(start, end - start);
    int32_t id;
    if (!absl::SimpleAtoi(word, &id)) {
      return absl::InvalidArgumentError(
          absl::StrCat("token ids: '", word,
                       "' is not an integer (expected a JSON array "
                       "or whitespace/comma separated ids)"));
    }
    ids.push_back(id);
    pos = end;
  }
  return tokenizer->Decode(ids);
}

}  // namespace llmpack::tok
