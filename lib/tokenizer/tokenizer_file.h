// tokenizer.txt: the self-contained tokenizer description stored in a package
// (format: formats/tokenizer_format.md). TokenizerSpec is its in-memory form,
// produced by the converters and consumed by Tokenizer. Plain data; the
// functions are stateless and thread-safe.
#ifndef LLMPACK_TOKENIZER_TOKENIZER_FILE_H_
#define LLMPACK_TOKENIZER_TOKENIZER_FILE_H_

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace llmpack::tokenizer {

enum class ModelKind {
  kByteLevelBpe,      // tokens are raw bytes; merges over byte symbols
  kSentencePieceBpe,  // pieces use U+2581 for space; scores; byte fallback
};

// How the merge priority of a pair of tokens is known.
enum class MergeMode {
  // Every split of a token into two tokens is a merge; merges are ordered by
  // (merged id, left id, right id). Llama 3 / tiktoken vocabularies.
  kRankedById,
  // An explicit list of (left id, right id) pairs in priority order.
  kExplicit,
  // SentencePiece: any pair whose concatenation is a piece merges; higher
  // piece score first, leftmost on ties.
  kByScore,
};

// SentencePiece piece types (the values of sentencepiece_model.proto).
enum class PieceType : uint8_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

// Whether a metaspace (U+2581) is prepended to the text before BPE.
enum class PrependScheme { kNever, kFirst, kAlways };

struct AddedToken {
  int32_t id = 0;
  bool special = false;       // skipped by "skip special" decoding; post-proc
  bool lstrip = false;        // match absorbs whitespace on the left
  bool rstrip = false;        // match absorbs whitespace on the right
  bool single_word = false;   // only matches when not inside a word
  bool normalized = false;    // matched against normalized text
  bool match_in_text = true;  // recognized when its text occurs in input
};

struct TokenizerSpec {
  ModelKind kind = ModelKind::kByteLevelBpe;
  // Token bytes by id (added tokens included: their content bytes).
  std::vector<std::string> tokens;
  // SentencePiece only: score and type by id (empty for byte-level BPE).
  std::vector<float> scores;
  std::vector<PieceType> types;

  MergeMode merge_mode = MergeMode::kRankedById;
  std::vector<std::pair<int32_t, int32_t>> merges;  // kExplicit only
  // A pre-token that is itself a token is emitted whole (HF ignore_merges).
  bool ignore_merges = false;

  std::string normalizer = "none";  // "none", "nfc" or "nfkc"
  // Pre-tokenizer: regexes applied in sequence, each splitting every piece
  // into matches and gaps (HF Split "Isolated").
  std::vector<std::string> split_regexes;
  // SentencePiece-style whitespace handling.
  bool space_to_metaspace = false;  // ' ' -> U+2581
  PrependScheme prepend = PrependScheme::kNever;
  // HF Metaspace: no prefix when the segment already starts with U+2581.
  bool prepend_only_if_absent = false;
  bool remove_extra_whitespaces = false;
  // Whole-text normalization as the sentencepiece library does it (dummy
  // prefix once, control tokens never matched), instead of per segment
  // between added tokens as Hugging Face does.
  bool spm_whole_text = false;

  bool byte_fallback = false;
  int32_t unk_id = -1;
  bool fuse_unk = false;

  std::vector<AddedToken> added;

  int32_t bos_id = -1;
  int32_t eos_id = -1;  // appended when add_eos
  bool add_bos = false;
  bool add_eos = false;
  std::vector<int32_t> stop_ids;  // every id that ends generation

  bool decode_strip_leading_space = false;
  // sentencepiece library surfaces: control -> "", unknown -> " \u2047 ".
  bool decode_spm_surfaces = false;
};

// Checks ids, duplicates and cross references; `context` names the source.
absl::Status ValidateTokenizerSpec(const TokenizerSpec& spec,
                                   const std::string& context);

std::string SerializeTokenizerSpec(const TokenizerSpec& spec);
absl::StatusOr<TokenizerSpec> ParseTokenizerSpec(std::string_view text,
                                                 const std::string& context);

absl::Status WriteTokenizerFile(const TokenizerSpec& spec,
                                const std::filesystem::path& path);
absl::StatusOr<TokenizerSpec> ReadTokenizerFile(
    const std::filesystem::path& path);

// Standard base64 (RFC 4648, with padding).
std::string Base64Encode(std::string_view bytes);
// Fails on characters outside the alphabet and on bad padding.
absl::StatusOr<std::string> Base64Decode(std::string_view text);

}  // namespace llmpack::tokenizer

#endif  // LLMPACK_TOKENIZER_TOKENIZER_FILE_H_
