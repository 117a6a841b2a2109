// Inputs that crashed the tokenizer library, found by chat_template_fuzz
// (tests/fuzz) or while writing the fuzzers, kept as regression tests: each
// must be a clean error.
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tokenizer/chat_template.h"
#include "tokenizer/convert_tokenizer.h"

namespace llmpack::tokenizer {
namespace {

using ::testing::HasSubstr;

std::string RenderError(const std::string& source) {
  auto text = RenderChatTemplate(source, {{"user", "hi"}}, {});
  EXPECT_FALSE(text.ok()) << source << " rendered as " << *text;
  return std::string(text.status().message());
}

// std::stoll threw std::out_of_range out of the library.
TEST(TokenizerFuzzFindingsTest, IntegerLiteralBeyond64BitsIsAnError) {
  EXPECT_THAT(RenderError("{{ 99999999999999999999 }}"),
              HasSubstr("integer literal 99999999999999999999 does not fit"));
}

// Signed overflow (UBSan) in + - * // % and unary minus.
TEST(TokenizerFuzzFindingsTest, IntegerOverflowIsAnError) {
  for (const char* source :
       {"{{ 9223372036854775807 + 1 }}", "{{ -9223372036854775807 - 2 }}",
        "{{ 4294967296 * 4294967296 }}",
        "{{ (-9223372036854775807 - 1) // -1 }}",
        "{{ -(-9223372036854775807 - 1) }}"}) {
    EXPECT_THAT(RenderError(source), HasSubstr("integer overflow")) << source;
  }
  auto ok = RenderChatTemplate(
      "{{ 9223372036854775806 + 1 }} {{ (-9223372036854775807 - 1) % -1 }} "
      "{{ 9223372036854775807 % -2 }} {{ 9223372036854775807 // -2 }}",
      {}, {});
  ASSERT_TRUE(ok.ok()) << ok.status();
  // Python: 0, -1 and -4611686018427387904 (floor division).
  EXPECT_EQ(*ok, "9223372036854775807 0 -1 -4611686018427387904");
}

// The slice index overflowed while stepping past the end (UBSan).
TEST(TokenizerFuzzFindingsTest, SliceWithHugeStepStopsAtTheEnd) {
  auto text = RenderChatTemplate(
      "{{ 'abcdef'[1::9223372036854775807] }}|{{ "
      "'abcdef'[::-9223372036854775807] }}",
      {}, {});
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, "b|f");
}

// A name expected after '.', '|' or 'is' at the very end of an expression
// was read past the end of the token list (out-of-bounds read).
TEST(TokenizerFuzzFindingsTest, ExpressionEndingAfterDotPipeOrIsIsAnError) {
  EXPECT_THAT(RenderError("{{ messages. }}"),
              HasSubstr("expected a name after '.'"));
  EXPECT_THAT(RenderError("{{ messages | }}"),
              HasSubstr("expected a filter after '|'"));
  EXPECT_THAT(RenderError("{{ messages is }}"),
              HasSubstr("unsupported test 'is '"));
}

// A float where a token id belongs converted with undefined behaviour.
TEST(TokenizerFuzzFindingsTest, TokenizerJsonFloatIdsAreErrors) {
  const char* kProcessors[] = {
      R"({"type": "TemplateProcessing", "single": [{"SpecialToken":
          {"id": "<s>"}}, {"Sequence": {"id": "A"}}],
          "special_tokens": {"<s>": {"ids": [1e300]}}})",
      R"({"type": "BertProcessing", "cls": ["<s>", 1e300],
          "sep": ["<s>", 0]})"};
  for (const char* processor : kProcessors) {
    nlohmann::json j = nlohmann::json::parse(R"({
      "model": {"type": "BPE", "vocab": {"a": 0, "<s>": 1}, "merges": []}})");
    j["post_processor"] = nlohmann::json::parse(processor);
    auto spec = SpecFromHfTokenizerJson(j, "tokenizer.json");
    ASSERT_FALSE(spec.ok()) << processor;
    EXPECT_THAT(std::string(spec.status().message()),
                HasSubstr("is not a valid token id: 1e+300"))
        << processor;
  }
}

}  // namespace
}  // namespace llmpack::tokenizer
