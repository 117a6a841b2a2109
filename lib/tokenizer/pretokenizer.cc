#include "tokenizer/pretokenizer.h"

#include <algorithm>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "tokenizer/utf8_util.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

namespace llmpack::tokenizer {
namespace {

// Per-thread match scratch: PCRE2 match data and a JIT stack large enough
// for long whitespace runs. One ovector pair is all Split needs.
struct MatchScratch {
  MatchScratch()
      : data(pcre2_match_data_create(1, nullptr)),
        context(pcre2_match_context_create(nullptr)),
        jit_stack(pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, nullptr)) {
    pcre2_jit_stack_assign(context, nullptr, jit_stack);
    pcre2_set_match_limit(context, kRegexMatchLimit);
    pcre2_set_depth_limit(context, kRegexDepthLimit);
    pcre2_set_heap_limit(context, kRegexHeapLimitKiB);
  }
  ~MatchScratch() {
    pcre2_jit_stack_free(jit_stack);
    pcre2_match_context_free(context);
    pcre2_match_data_free(data);
  }
  pcre2_match_data* data;
  pcre2_match_context* context;
  pcre2_jit_stack* jit_stack;
};

MatchScratch& Scratch() {
  thread_local MatchScratch scratch;
  return scratch;
}

bool IsAscii(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

}  // namespace

struct SplitRegex::Impl {
  std::string pattern;  // for error messages
  pcre2_code* code = nullptr;
  bool jit = false;
};

bool IsNfcInert(int32_t cp) {
  // Ranges whose characters are their own NFC form, have combining class 0
  // and never take part in a composition as the second character; a string
  // made only of them is unchanged by NFC. Verified against utf8proc by
  // tests/tokenizer/unit_test.cc.
  static constexpr int32_t kRanges[][2] = {
      {0x0000, 0x02FF},  // ASCII, Latin-1, Latin Extended, IPA, modifiers
      {0x3000, 0x3029},  // CJK symbols (U+302A..302F are combining)
      {0x3030, 0x3098},  // ..., Hiragana (U+3099/309A are combining)
      {0x309B, 0x30FF},  // Katakana
      {0x4E00, 0x9FFF},  // CJK Unified Ideographs
      {0xAC00, 0xD7A3},  // Hangul syllables
      {0xFF00, 0xFFEF},  // Halfwidth and fullwidth forms
  };
  for (const auto& r : kRanges) {
    if (cp >= r[0] && cp <= r[1]) return true;
  }
  return false;
}

// True when NFC cannot change `text` (valid UTF-8 of inert characters only).
bool NfcQuickYes(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      ++i;
      continue;
    }
    const size_t n = ValidCharLength(text, i);
    if (n == 0 || !IsNfcInert(DecodeCodePoint(text, i, n))) return false;
    i += n;
  }
  return true;
}

std::string Normalize(std::string_view text, const std::string& form) {
  if (form == "none" || IsAscii(text)) return std::string(text);
  if (form == "nfc" && NfcQuickYes(text)) return std::string(text);
  int options = UTF8PROC_STABLE | UTF8PROC_COMPOSE;
  if (form == "nfkc") options |= UTF8PROC_COMPAT;
  utf8proc_uint8_t* out = nullptr;
  const utf8proc_ssize_t n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                   static_cast<utf8proc_ssize_t>(text.size()), &out,
                   static_cast<utf8proc_option_t>(options));
  if (n < 0) return std::string(text);  // invalid UTF-8: leave as is
  std::string result(reinterpret_cast<char*>(out), static_cast<size_t>(n));
  std::free(out);
  return result;
}

absl::StatusOr<std::unique_ptr<SplitRegex>> SplitRegex::Compile(
    const std::string& pattern) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code = pcre2_compile(
      reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
      PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &error, &offset,
      nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    return absl::InvalidArgumentError(absl::StrCat(
        "pre-tokenizer regex '", pattern, "' does not compile at offset ",
        offset, ": ", reinterpret_cast<const char*>(message)));
  }
  std::unique_ptr<SplitRegex> r(new SplitRegex());
  r->impl_ = std::make_unique<Impl>();
  r->impl_->pattern = pattern;
  r->impl_->code = code;
  r->impl_->jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  return r;
}

SplitRegex::~SplitRegex() {
  if (impl_ && impl_->code) pcre2_code_free(impl_->code);
}

absl::Status SplitRegex::Split(std::string_view text, Piece piece,
                               std::vector<Piece>* out) const {
  MatchScratch& scratch = Scratch();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  const size_t end = piece.start + piece.len;
  size_t pos = piece.start;
  size_t gap_start = piece.start;
  while (pos < end) {
    // The piece is matched as its own subject (length `end`) so that
    // lookaheads do not see text beyond it.
    const int rc = impl_->jit
                       ? pcre2_jit_match(impl_->code, subject, end, pos, 0,
                                         scratch.data, scratch.context)
                       : pcre2_match(impl_->code, subject, end, pos, 0,
                                     scratch.data, scratch.context);
    if (rc == PCRE2_ERROR_NOMATCH) break;  // the rest is a gap
    if (rc < 0) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(rc, message, sizeof(message));
      const bool limit =
          rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT ||
          rc == PCRE2_ERROR_HEAPLIMIT || rc == PCRE2_ERROR_JIT_STACKLIMIT ||
          rc == PCRE2_ERROR_NOMEMORY;
      const std::string what =
          absl::StrCat("pre-tokenizer regex '", impl_->pattern.substr(0, 80),
                       "' failed at byte ", pos,
                       " of the text: ", reinterpret_cast<const char*>(message),
                       limit ? " (catastrophic backtracking?)" : "");
      return limit ? absl::ResourceExhaustedError(what)
                   : absl::InternalError(what);
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(scratch.data);
    size_t ms = ov[0], me = ov[1];
    if (me == ms) {  // empty match: step one character and retry
      pos = ms + std::min(CharStep(text, ms), end - ms);
      continue;
    }
    if (ms > gap_start) out->push_back({gap_start, ms - gap_start});
    out->push_back({ms, me - ms});
    pos = gap_start = me;
  }
  if (end > gap_start) out->push_back({gap_start, end - gap_start});
  return absl::OkStatus();
}

bool IsWordChar(int32_t cp) {
  if (cp == '_') return true;
  switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
      return true;
    default:
      return false;
  }
}

bool IsUnicodeWhitespace(int32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 ||
         cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
         cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

}  // namespace llmpack::tokenizer
