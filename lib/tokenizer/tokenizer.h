// The runtime tokenizer: loads only tokenizer.txt and reproduces the Hugging
// Face tokenizers (or sentencepiece) encoding it was converted from.
//
// Thread safety: a loaded Tokenizer is immutable; Encode/Decode are const and
// safe to call concurrently. A StreamingDecoder is single-threaded state that
// borrows a Tokenizer, which must outlive it.
#ifndef LLMPACK_TOKENIZER_TOKENIZER_H_
#define LLMPACK_TOKENIZER_TOKENIZER_H_

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "tokenizer/bpe_merge.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer_file.h"

namespace llmpack::tokenizer {

struct EncodeOptions {
  // Apply the post-processor: BOS (and EOS) as the header says.
  bool add_special = false;
  // Recognize added/special-token text in the input (Hugging Face always
  // does; turn off to encode untrusted text literally).
  bool parse_special = true;
};

class Tokenizer {
 public:
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Load(
      const std::filesystem::path& tokenizer_txt);
  // `context` names the source in error messages.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromSpec(
      TokenizerSpec spec, const std::string& context);

  // Like Hugging Face `encode(text, add_special_tokens=add_special)`:
  // special-token text in the input is always recognized. Fails only when a
  // pre-tokenizer regex hits its match limits (SplitRegex::Split).
  absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text,
                                              bool add_special) const;
  absl::StatusOr<std::vector<int32_t>> Encode(
      std::string_view text, const EncodeOptions& options) const;
  // Fails on ids outside [0, vocab_size).
  absl::StatusOr<std::string> Decode(absl::Span<const int32_t> ids) const;
  // `skip_special`: leave out special tokens (HF skip_special_tokens).
  absl::StatusOr<std::string> Decode(absl::Span<const int32_t> ids,
                                     bool skip_special) const;

  int32_t vocab_size() const {
    return static_cast<int32_t>(spec_.tokens.size());
  }
  const TokenizerSpec& spec() const { return spec_; }
  std::optional<int32_t> bos_id() const;
  bool add_bos() const { return spec_.add_bos; }
  const std::vector<int32_t>& stop_ids() const { return spec_.stop_ids; }
  // Id of the token with exactly these bytes (added tokens included).
  std::optional<int32_t> TokenToId(std::string_view bytes) const;

 private:
  friend class StreamingDecoder;
  struct EncodeState;
  struct AddedMatch {
    int32_t id;
    size_t start;  // including absorbed whitespace (lstrip/rstrip)
    size_t end;
  };
  Tokenizer() = default;
  absl::Status Init(const std::string& context);
  absl::Status BuildMerges(const std::string& context);

  // Next added token at or after `from` in text, if any.
  std::optional<AddedMatch> FindAdded(std::string_view text, size_t from,
                                      bool parse_special) const;
  // Encodes text without added tokens; `first`: no text segment came before
  // (for the "first" metaspace prepend scheme).
  void EncodeSegment(std::string_view text, bool first, EncodeState* state,
                     std::vector<int32_t>* out) const;
  // Pieces of already normalized text through the BPE model.
  void EncodePieces(std::string_view text, EncodeState* state,
                    std::vector<int32_t>* out) const;
  void EncodeWord(std::string_view word, EncodeState* state,
                  std::vector<int32_t>* out) const;
  // The merge loop for one word (no cache, no whole-word lookup).
  void MergeWord(std::string_view word, EncodeState* state,
                 std::vector<int32_t>* out) const;
  // Decoding without the id check; `strip_leading_space` applies once.
  std::string DecodeUnchecked(absl::Span<const int32_t> ids,
                              bool strip_leading_space,
                              bool skip_special) const;
  bool IsSpecial(int32_t id) const {
    return added_index_[id] >= 0 && spec_.added[added_index_[id]].special;
  }

  TokenizerSpec spec_;
  bool spm_ = false;
  // Model vocabulary (no added tokens, no byte pieces) by bytes.
  absl::flat_hash_map<std::string, int32_t> vocab_;
  std::array<int32_t, 256> byte_ids_{};  // -1 when absent
  MergeTable merges_;
  std::vector<std::unique_ptr<SplitRegex>> regexes_;
  // Added tokens matchable in text, by first byte, longest first.
  std::array<std::vector<int32_t>, 256> added_by_first_byte_;
  std::vector<int32_t> added_index_;  // id -> index into spec_.added, or -1
  // What each id contributes to decoded text (before UTF-8 repair).
  std::vector<std::string> decode_bytes_;
  std::vector<bool> is_byte_piece_;
};

// Turns a stream of ids into text without ever splitting a UTF-8 character:
// bytes of an incomplete character are held back until it completes.
class StreamingDecoder {
 public:
  // `skip_special`: special tokens (e.g. <|eot_id|>) produce no text.
  explicit StreamingDecoder(const Tokenizer& tokenizer,
                            bool skip_special = false);
  // The text completed by this id (may be empty). Ids out of range produce
  // U+FFFD.
  std::string Push(int32_t id);
  // Whatever is still held back, with invalid bytes replaced.
  std::string Flush();

 private:
  const Tokenizer& tokenizer_;
  const bool skip_special_;
  std::vector<int32_t> pending_;
  bool at_start_ = true;  // leading-space stripping not yet applied
};

}  // namespace llmpack::tokenizer

#endif  // LLMPACK_TOKENIZER_TOKENIZER_H_
