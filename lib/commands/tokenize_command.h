// The library side of `llmverify --tokenize` / `--detokenize`. Stateless;
// each call loads the tokenizer.
#ifndef LLMPACK_COMMANDS_TOKENIZE_COMMAND_H_
#define LLMPACK_COMMANDS_TOKENIZE_COMMAND_H_

#include <filesystem>
#include <string>

#include "absl/status/statusor.h"

namespace llmpack::commands {

// `package_dir_or_tokenizer_txt`: a package directory (its tokenizer.txt is
// used) or a tokenizer.txt file. `text_or_at_file`: the text, or "@path" to
// read it from a file. Returns the ids as a JSON array, e.g. "[1, 2, 3]".
absl::StatusOr<std::string> TokenizeToJson(
    const std::filesystem::path& package_dir_or_tokenizer_txt,
    const std::string& text_or_at_file, bool add_special);

// `ids_or_at_file`: token ids in the one syntax of llmpack/token_ids.h,
// or "@path" to read them from a file. Fails on ids out of range.
absl::StatusOr<std::string> DetokenizeIds(
    const std::filesystem::path& package_dir_or_tokenizer_txt,
    const std::string& ids_or_at_file);

}  // namespace llmpack::commands

#endif  // LLMPACK_COMMANDS_TOKENIZE_COMMAND_H_
