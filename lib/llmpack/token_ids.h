// The one parser for token-id lists given by users (llmverify --prompt-ids,
// --detokenize, token-id eval files).
//
// Accepted syntax: decimal integers (an optional leading '-'; range is
// checked by the caller against its vocabulary) separated by any mix of
// whitespace and commas, optionally enclosed in one pair of square brackets
// so that a JSON array of integers is accepted too:
//   "0 51 1083"   "0,51,1083"   "[0, 51, 1083]"   "0\n51\n1083\n"
// Anything else is an error naming the first piece that is not an integer.
// Thread-safe: pure function.
#ifndef LLMPACK_TOKEN_IDS_H_
#define LLMPACK_TOKEN_IDS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace llmpack {

// `context` names the source in errors. An empty list is not an error.
absl::StatusOr<std::vector<int32_t>> ParseTokenIds(absl::string_view text,
                                                   absl::string_view context);

}  // namespace llmpack

#endif  // LLMPACK_TOKEN_IDS_H_
