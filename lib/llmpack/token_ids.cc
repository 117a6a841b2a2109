#include "llmpack/token_ids.h"

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace llmpack {

absl::StatusOr<std::vector<int32_t>> ParseTokenIds(absl::string_view text,
                                                   absl::string_view context) {
  absl::string_view body = absl::StripAsciiWhitespace(text);
  if (!body.empty() && body.front() == '[') {
    if (body.back() != ']') {
      return absl::InvalidArgumentError(absl::StrCat(
          context, ": token ids start with '[' but do not end with ']'"));
    }
    body = body.substr(1, body.size() - 2);
  }
  std::vector<int32_t> ids;
  for (absl::string_view piece :
       absl::StrSplit(body, absl::ByAnyChar(" \t\r\n,"), absl::SkipEmpty())) {
    int32_t id;
    if (!absl::SimpleAtoi(piece, &id)) {
      return absl::InvalidArgumentError(absl::StrCat(
          context, ": '", piece,
          "' is not an integer (expected integers separated by whitespace "
          "or commas, optionally in [brackets])"));
    }
    ids.push_back(id);
  }
  return ids;
}

}  // namespace llmpack
