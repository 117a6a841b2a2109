// Pre-tokenization pieces: Unicode normalization (utf8proc) and regex
// splitting (PCRE2 with JIT). A SplitRegex is immutable after Compile and
// safe to use from several threads at once (match scratch is per thread).
#ifndef LLMPACK_TOKENIZER_PRETOKENIZER_H_
#define LLMPACK_TOKENIZER_PRETOKENIZER_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace llmpack::tokenizer {

// Returns the NFC ("nfc") or NFKC ("nfkc") form of `text`, or `text`
// unchanged for "none", for pure ASCII, and for invalid UTF-8.
std::string Normalize(std::string_view text, const std::string& form);

// True for code points in ranges that NFC leaves alone whatever surrounds
// them (used to skip normalization of most CJK and Latin text).
bool IsNfcInert(int32_t cp);

// PCRE2 limits of one match attempt (pcre2_set_match_limit, _depth_limit,
// _heap_limit). Real split patterns (GPT-2, Llama 3, Qwen) need about one
// step per byte of a piece (Llama 3's \s*[\r\n]+ backtracks through a run
// of spaces), so 10^7 (PCRE2's own default, made explicit) passes runs of
// megabytes, while a catastrophic pattern like (a+)+b still hits it in
// milliseconds.
inline constexpr uint32_t kRegexMatchLimit = 10'000'000;
inline constexpr uint32_t kRegexDepthLimit = 10'000'000;
inline constexpr uint32_t kRegexHeapLimitKiB = 64 * 1024;

// A byte range of the text being split.
struct Piece {
  size_t start;
  size_t len;
};

// One Hugging Face `Split` pre-tokenizer with behavior "Isolated": every
// match becomes a piece and so does every non-empty gap between matches.
class SplitRegex {
 public:
  // The pattern uses the Oniguruma syntax of tokenizer.json. Compiled with
  // PCRE2_UCP, where \s is \p{Z}, \h and \v: Oniguruma's Unicode
  // White_Space plus U+180E.
  static absl::StatusOr<std::unique_ptr<SplitRegex>> Compile(
      const std::string& pattern);
  ~SplitRegex();
  SplitRegex(const SplitRegex&) = delete;
  SplitRegex& operator=(const SplitRegex&) = delete;

  // Appends the pieces of text[piece.start, +piece.len) to `out`. A pattern
  // from an untrusted tokenizer may backtrack catastrophically: each match
  // runs under kRegexMatchLimit / kRegexDepthLimit / kRegexHeapLimitKiB and
  // hitting one is a ResourceExhausted error naming the pattern and the byte
  // offset (never a silent mis-split).
  absl::Status Split(std::string_view text, Piece piece,
                     std::vector<Piece>* out) const;

 private:
  SplitRegex() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// True for Unicode White_Space characters (what Rust's char::is_whitespace
// accepts).
bool IsUnicodeWhitespace(int32_t cp);

// Letters, numbers and '_' (Unicode categories from utf8proc): what an added
// token marked single_word must not touch.
bool IsWordChar(int32_t cp);

}  // namespace llmpack::tokenizer

#endif  // LLMPACK_TOKENIZER_PRETOKENIZER_H_
