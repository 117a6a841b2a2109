// UTF-8 helpers shared by the tokenizer's encoder and decoders. Stateless,
// thread-safe.
#ifndef LLMPACK_TOKENIZER_UTF8_UTIL_H_
#define LLMPACK_TOKENIZER_UTF8_UTIL_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace llmpack::tokenizer {

inline constexpr char kReplacementChar[] = "\xEF\xBF\xBD";  // U+FFFD
inline constexpr char kMetaspace[] = "\xE2\x96\x81";        // U+2581

// Length of the valid UTF-8 character at s[i], or 0 if the bytes there do
// not start a complete, well-formed character.
size_t ValidCharLength(std::string_view s, size_t i);

// Length of the character at s[i] if valid, else 1 (to step over a bad byte).
inline size_t CharStep(std::string_view s, size_t i) {
  const size_t n = ValidCharLength(s, i);
  return n == 0 ? 1 : n;
}

bool IsValidUtf8(std::string_view s);

// Rust's String::from_utf8_lossy: each maximal ill-formed subsequence
// becomes one U+FFFD (the Unicode "substitution of maximal subparts").
std::string Utf8Lossy(std::string_view s);

// Each byte that is not part of a valid character becomes one U+FFFD (what
// the sentencepiece library does with byte pieces).
std::string Utf8ReplacePerByte(std::string_view s);

// Number of trailing bytes that form the well-formed beginning of a
// multi-byte character that is not complete yet (0..3).
size_t IncompleteTailLength(std::string_view s);

// Decodes the code point of a valid character of length `len` at s[i].
int32_t DecodeCodePoint(std::string_view s, size_t i, size_t len);

}  // namespace llmpack::tokenizer

#endif  // LLMPACK_TOKENIZER_UTF8_UTIL_H_
