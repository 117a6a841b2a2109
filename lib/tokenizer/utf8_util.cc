#include "tokenizer/utf8_util.h"

namespace llmpack::tokenizer {
namespace {

// Expected length from the lead byte and the allowed range of the second
// byte (Unicode Table 3-7, well-formed UTF-8 byte sequences).
struct LeadInfo {
  uint8_t len;  // 0: not a lead byte
  uint8_t lo;
  uint8_t hi;
};

LeadInfo Lead(uint8_t b) {
  if (b < 0x80) return {1, 0, 0};
  if (b < 0xC2) return {0, 0, 0};
  if (b < 0xE0) return {2, 0x80, 0xBF};
  if (b == 0xE0) return {3, 0xA0, 0xBF};
  if (b == 0xED) return {3, 0x80, 0x9F};
  if (b < 0xF0) return {3, 0x80, 0xBF};
  if (b == 0xF0) return {4, 0x90, 0xBF};
  if (b < 0xF4) return {4, 0x80, 0xBF};
  if (b == 0xF4) return {4, 0x80, 0x8F};
  return {0, 0, 0};
}

// Number of bytes at s[i] that are a well-formed prefix of a character
// (the full length when complete). 0 for an invalid lead byte.
size_t WellFormedPrefix(std::string_view s, size_t i, size_t* expected) {
  const LeadInfo info = Lead(uint8_t(s[i]));
  *expected = info.len;
  if (info.len <= 1) return info.len;
  size_t k = 1;
  for (; k < info.len && i + k < s.size(); ++k) {
    const uint8_t c = uint8_t(s[i + k]);
    const uint8_t lo = k == 1 ? info.lo : 0x80;
    const uint8_t hi = k == 1 ? info.hi : 0xBF;
    if (c < lo || c > hi) break;
  }
  return k;
}

}  // namespace

size_t ValidCharLength(std::string_view s, size_t i) {
  size_t expected;
  const size_t n = WellFormedPrefix(s, i, &expected);
  return n == expected ? n : 0;
}

bool IsValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    if (uint8_t(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const size_t n = ValidCharLength(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string Utf8Lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    size_t expected;
    const size_t n = WellFormedPrefix(s, i, &expected);
    if (n != 0 && n == expected) {
      out.append(s.data() + i, n);
      i += n;
    } else {
      out += kReplacementChar;
      i += n == 0 ? 1 : n;
    }
  }
  return out;
}

std::string Utf8ReplacePerByte(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const size_t n = ValidCharLength(s, i);
    if (n != 0) {
      out.append(s.data() + i, n);
      i += n;
    } else {
      out += kReplacementChar;
      ++i;
    }
  }
  return out;
}

size_t IncompleteTailLength(std::string_view s) {
  const size_t start = s.size() > 3 ? s.size() - 3 : 0;
  for (size_t i = start; i < s.size(); ++i) {
    size_t expected;
    const size_t n = WellFormedPrefix(s, i, &expected);
    if (expected > 1 && n == s.size() - i && n < expected) return n;
  }
  return 0;
}

int32_t DecodeCodePoint(std::string_view s, size_t i, size_t len) {
  const uint8_t b0 = uint8_t(s[i]);
  if (len == 1) return b0;
  int32_t cp = b0 & (0x7F >> len);
  for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (uint8_t(s[i + k]) & 0x3F);
  return cp;
}

}  // namespace llmpack::tokenizer
