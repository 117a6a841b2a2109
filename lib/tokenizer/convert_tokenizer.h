// Conversion of common tokenizer sources into tokenizer.txt
// (formats/tokenizer_format.md): Hugging Face tokenizer.json (byte-level BPE
// and SentencePiece-style BPE), sentencepiece tokenizer.model (BPE), and
// tiktoken rank files. Stateless functions, safe to call concurrently on
// different outputs.
#ifndef LLMPACK_TOKENIZER_CONVERT_TOKENIZER_H_
#define LLMPACK_TOKENIZER_CONVERT_TOKENIZER_H_

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "llmpack/manifest.h"
#include "llmpack/model_config.h"
#include "nlohmann/json.hpp"
#include "tokenizer/tokenizer_file.h"

namespace llmpack::tokenizer {

// Converts whatever tokenizer files hf_dir holds (tokenizer.json,
// tokenizer.model, tokenizer_config.json, chat_template.jinja,
// generation_config.json) into out_file (tokenizer.txt). Returns NotFound if
// the folder has no tokenizer. Also sets chat_template, bos_id and add_bos in
// *config and adds every stop id to its eos_ids (ids already there are kept;
// other fields are left alone).
absl::Status ConvertTokenizerDir(const std::filesystem::path& hf_dir,
                                 const std::filesystem::path& out_file,
                                 llmpack::ModelConfig* config);

// The package writer's tokenizer stage: converts hf_dir's tokenizer into
// staging_dir/tokenizer.txt, lists it in manifest->files (role "tokenizer",
// size, XXH3-64) and fills manifest->config like ConvertTokenizerDir. Returns
// NotFound (and changes nothing) when hf_dir has no tokenizer.
absl::Status AddTokenizerToPackage(const std::filesystem::path& hf_dir,
                                   const std::filesystem::path& staging_dir,
                                   llmpack::Manifest* manifest);

// One file: a tokenizer.json or a sentencepiece tokenizer.model (recognized
// by content). No config files are consulted.
absl::Status ConvertTokenizerFile(const std::filesystem::path& tokenizer_file,
                                  const std::filesystem::path& out_file);

struct TiktokenOptions {
  // Pre-tokenizer regex, e.g. Llama 3's (kLlama3Pattern).
  std::string pattern;
  // (text, id) of special tokens; ids must continue the ranks without gaps.
  std::vector<std::pair<std::string, int32_t>> special_tokens;
  int32_t bos_id = -1;
  bool add_bos = false;
  std::vector<int32_t> stop_ids;
};

// The split regex Llama 3 ships with its tiktoken file.
inline constexpr char kLlama3Pattern[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// A tiktoken ranks file: "<base64 token> <rank>" per line.
absl::Status ConvertTiktokenRanks(const std::filesystem::path& ranks_file,
                                  const TiktokenOptions& options,
                                  const std::filesystem::path& out_file);

// The in-memory conversions behind the functions above; `context` names the
// source in error messages.
absl::StatusOr<TokenizerSpec> SpecFromHfTokenizerJson(
    const nlohmann::json& json, const std::string& context);
absl::StatusOr<TokenizerSpec> SpecFromSentencePieceModel(
    std::string_view model_bytes, const std::string& context);
absl::StatusOr<TokenizerSpec> SpecFromTiktokenRanks(
    std::string_view ranks_text, const TiktokenOptions& options,
    const std::string& context);

}  // namespace llmpack::tokenizer

#endif  // LLMPACK_TOKENIZER_CONVERT_TOKENIZER_H_
