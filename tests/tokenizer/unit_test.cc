#include <utf8proc.h>

#include <random>
#include <string>
#include <thread>
#include <vector>

#include "commands/tokenize_command.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "llmpack/file_util.h"
#include "nlohmann/json.hpp"
#include "support/test_paths.h"
#include "tokenizer/convert_tokenizer.h"
#include "tokenizer/fixture_tokenizers.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_file.h"
#include "tokenizer/utf8_util.h"
#include "verify/tokenizer_codec.h"

namespace llmpack::tokenizer {
namespace {

using ::llmpack::testing::ScopedTempDir;
using ::testing::ElementsAre;

TEST(Base64, RoundTripsEveryLengthAndByte) {
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes += char(i);
  for (size_t n = 0; n <= bytes.size(); n += 1) {
    const std::string s = bytes.substr(256 - n);
    auto back = Base64Decode(Base64Encode(s));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, s);
  }
  EXPECT_EQ(Base64Encode("ab"), "YWI=");
  EXPECT_FALSE(Base64Decode("YW=I").ok());
  EXPECT_FALSE(Base64Decode("YWI").ok());
}

TEST(Utf8, LossyFollowsMaximalSubparts) {
  const std::string fffd = kReplacementChar;
  EXPECT_EQ(Utf8Lossy("a\xE4\xB8\xAD"
                      "b"),
            "a\xE4\xB8\xAD"
            "b");
  EXPECT_EQ(Utf8Lossy("\xE4\xB8"), fffd);                    // truncated: one
  EXPECT_EQ(Utf8Lossy("\xFF\xFE"), fffd + fffd);             // bad leads: each
  EXPECT_EQ(Utf8Lossy("\xED\xA0\x80"), fffd + fffd + fffd);  // surrogate
  EXPECT_EQ(Utf8ReplacePerByte("\xE4\xB8x"), fffd + fffd + "x");
  EXPECT_EQ(IncompleteTailLength("a\xE4\xB8"), 2u);
  EXPECT_EQ(IncompleteTailLength("a\xE4\xB8\xAD"), 0u);
  EXPECT_EQ(IncompleteTailLength("a\xFF"), 0u);
}

// The NFC fast path's claim, checked code point by code point against
// utf8proc: inert characters are their own NFC, are starters, and can never
// be the second character of a composition.
TEST(Normalize, NfcInertRangesAreStable) {
  int checked = 0;
  for (int32_t cp = 0; cp <= 0x10FFFF; ++cp) {
    if (!IsNfcInert(cp)) continue;
    ++checked;
    const utf8proc_property_t* p = utf8proc_get_property(cp);
    ASSERT_EQ(p->combining_class, 0) << cp;
    ASSERT_TRUE(p->comb_index == UINT16_MAX || p->comb_index < 0x8000) << cp;
    utf8proc_uint8_t buf[8] = {};
    const auto n = utf8proc_encode_char(cp, buf);
    if (cp == 0) continue;
    utf8proc_uint8_t* nfc = utf8proc_NFC(buf);
    ASSERT_NE(nfc, nullptr);
    EXPECT_EQ(std::string(reinterpret_cast<char*>(nfc)),
              std::string(reinterpret_cast<char*>(buf), n))
        << cp;
    std::free(nfc);
  }
  EXPECT_EQ(checked, 33420);  // sizes of the ranges
  // Outside the fast path normalization still happens.
  EXPECT_EQ(Normalize("e\xCC\x81", "nfc"), "\xC3\xA9");
  EXPECT_EQ(Normalize("\xE4\xB8\xAD"
                      "e\xCC\x81",
                      "nfc"),
            "\xE4\xB8\xAD\xC3\xA9");
}

// A byte-level vocabulary of the 256 bytes plus "ab" (merge a + b).
TokenizerSpec ByteSpec() {
  TokenizerSpec spec;
  for (int b = 0; b < 256; ++b) spec.tokens.push_back(std::string(1, char(b)));
  spec.tokens.push_back("ab");
  spec.tokens.push_back("<|end|>");
  spec.added.push_back({.id = 257, .special = true});
  spec.stop_ids = {257};
  return spec;
}

TEST(TokenizerSpecFile, SerializeParseRoundTrip) {
  TokenizerSpec spec = ByteSpec();
  spec.split_regexes = {R"(\p{L}+|\s+)"};
  spec.normalizer = "nfc";
  spec.merge_mode = MergeMode::kExplicit;
  spec.merges = {{'a', 'b'}};
  const std::string text = SerializeTokenizerSpec(spec);
  auto back = ParseTokenizerSpec(text, "t");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(SerializeTokenizerSpec(*back), text);
  EXPECT_EQ(back->tokens, spec.tokens);
  EXPECT_EQ(back->merges, spec.merges);
  EXPECT_EQ(back->split_regexes, spec.split_regexes);
  std::string crlf;
  for (char c : text)
    crlf += c == '\n' ? std::string("\r\n") : std::string(1, c);
  auto from_crlf = ParseTokenizerSpec(crlf, "crlf");
  ASSERT_TRUE(from_crlf.ok()) << from_crlf.status();
  EXPECT_EQ(SerializeTokenizerSpec(*from_crlf), text);
}

TEST(Tokenizer, RankedByIdMergesAndSpecialText) {
  auto tok = Tokenizer::FromSpec(ByteSpec(), "test");
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_THAT(*(*tok)->Encode("xab<|end|>", false), ElementsAre('x', 256, 257));
  EncodeOptions literal;
  literal.parse_special = false;
  EXPECT_EQ((*tok)->Encode("<|end|>", literal)->size(), 7u);
}

TEST(Tokenizer, AddedTokenFlags) {
  TokenizerSpec spec = ByteSpec();
  spec.added[0].single_word = true;
  auto single = Tokenizer::FromSpec(spec, "test");
  ASSERT_TRUE(single.ok());
  EXPECT_EQ((*single)->Encode("x<|end|>", false)->size(), 8u);  // inside a word
  EXPECT_THAT(*(*single)->Encode("x <|end|>", false),
              ElementsAre('x', ' ', 257));
  EXPECT_EQ((*single)->Encode("\xC3\xA9<|end|>", false)->size(), 9u);  // é
  spec.added[0] = {.id = 257, .special = true, .lstrip = true, .rstrip = true};
  auto strip = Tokenizer::FromSpec(spec, "test");
  ASSERT_TRUE(strip.ok());
  EXPECT_THAT(*(*strip)->Encode("x \t<|end|>\n y", false),
              ElementsAre('x', 257, 'y'));
}

TEST(StreamingDecoder, HoldsBackIncompleteCharacters) {
  auto tok = Tokenizer::FromSpec(ByteSpec(), "test");
  ASSERT_TRUE(tok.ok());
  const std::vector<int32_t> ids = *(*tok)->Encode("a中", false);
  ASSERT_EQ(ids.size(), 4u);
  StreamingDecoder stream(**tok);
  EXPECT_EQ(stream.Push(ids[0]), "a");
  EXPECT_EQ(stream.Push(ids[1]), "");
  EXPECT_EQ(stream.Push(ids[2]), "");
  EXPECT_EQ(stream.Push(ids[3]), "中");
  EXPECT_EQ(stream.Push(0xE4), "");
  EXPECT_EQ(stream.Flush(), kReplacementChar);
}

// HF Metaspace pre-tokenizer (prepend_scheme "first", split): the prefix
// goes only on the first text segment and never doubles an existing one.
TEST(Tokenizer, MetaspacePreTokenizer) {
  const auto j = nlohmann::json::parse(R"({
    "added_tokens": [{"id": 4, "content": "<s>", "special": true}],
    "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581",
                      "prepend_scheme": "first", "split": true},
    "decoder": {"type": "Metaspace", "replacement": "\u2581",
                "prepend_scheme": "first", "split": true},
    "model": {"type": "BPE", "vocab": {"\u2581": 0, "a": 1, "b": 2,
              "\u2581a": 3, "<s>": 4}, "merges": ["\u2581 a"]}})");
  auto spec = SpecFromHfTokenizerJson(j, "metaspace.json");
  ASSERT_TRUE(spec.ok()) << spec.status();
  auto tok = Tokenizer::FromSpec(*spec, "metaspace.json");
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_THAT(*(*tok)->Encode("a a", false), ElementsAre(3, 3));
  EXPECT_THAT(*(*tok)->Encode(" a", false), ElementsAre(3));
  EXPECT_THAT(*(*tok)->Encode("<s>a", false), ElementsAre(4, 3));
  EXPECT_THAT(*(*tok)->Encode("a<s>a", false), ElementsAre(3, 4, 1));
  EXPECT_EQ(*(*tok)->Decode({3, 3}), "a a");
}

// HF ByteLevel pre-tokenizer with add_prefix_space (GPT-2/RoBERTa): a space
// before every text segment that lacks one; decoding keeps it.
TEST(Tokenizer, ByteLevelAddPrefixSpace) {
  const auto j = nlohmann::json::parse(R"({
    "added_tokens": [{"id": 3, "content": "<s>", "special": true}],
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": true,
                      "use_regex": true},
    "decoder": {"type": "ByteLevel"},
    "model": {"type": "BPE", "vocab": {"a": 0, "\u0120": 1, "\u0120a": 2,
              "<s>": 3}, "merges": ["\u0120 a"]}})");
  auto spec = SpecFromHfTokenizerJson(j, "gpt2.json");
  ASSERT_TRUE(spec.ok()) << spec.status();
  auto tok = Tokenizer::FromSpec(*spec, "gpt2.json");
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_THAT(*(*tok)->Encode("a", false), ElementsAre(2));
  EXPECT_THAT(*(*tok)->Encode(" a", false), ElementsAre(2));
  EXPECT_THAT(*(*tok)->Encode("a<s>a", false), ElementsAre(2, 3, 2));
  EXPECT_EQ(*(*tok)->Decode({2, 2}), " a a");
}

TEST(Tiktoken, RanksFileConverts) {
  // Bytes a, b, c, then "ab", "abc".
  const std::string ranks = "YQ== 0\nYg== 1\nYw== 2\nYWI= 3\nYWJj 4\n";
  TiktokenOptions options;
  options.pattern = R"(\p{L}+|\s+)";
  options.special_tokens = {{"<|eot|>", 5}};
  options.stop_ids = {5};
  auto spec = SpecFromTiktokenRanks(ranks, options, "r");
  ASSERT_TRUE(spec.ok()) << spec.status();
  auto tok = Tokenizer::FromSpec(*spec, "r");
  ASSERT_TRUE(tok.ok()) << tok.status();
  // " " has no token: bytes without a token are dropped (as in HF).
  EXPECT_THAT(*(*tok)->Encode("abcab ab<|eot|>", false),
              ElementsAre(4, 3, 3, 5));
  EXPECT_THAT(*(*tok)->Encode("cab<|eot|>", false), ElementsAre(2, 3, 5));
}

TEST(Tokenizer, ConcurrentEncodeMatchesSerial) {
  LLMPACK_REQUIRE_FIXTURES();
  ScopedTempDir tmp;
  auto tok = LoadFixtureTokenizer(kBpe4k, tmp.path());
  ASSERT_TRUE(tok.ok()) << tok.status();
  const std::string text =
      "The quick brown fox 跳过 the lazy dog. <|im_start|> 12345 ";
  const std::vector<int32_t> expected = *(*tok)->Encode(text, true);
  std::vector<bool> same(4, false);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      bool ok = true;
      for (int i = 0; i < 200; ++i)
        ok = ok && *(*tok)->Encode(text, true) == expected;
      same[t] = ok;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_THAT(same, ::testing::Each(true));
}

// Arbitrary bytes (mostly invalid UTF-8) encode without loss: decoding gives
// the input with invalid sequences repaired exactly as Utf8Lossy does.
TEST(Tokenizer, RandomBytesRoundTrip) {
  LLMPACK_REQUIRE_FIXTURES();
  ScopedTempDir tmp;
  auto tok = LoadFixtureTokenizer(kBpe4k, tmp.path());
  ASSERT_TRUE(tok.ok()) << tok.status();
  std::mt19937 rng(7);
  for (int i = 0; i < 500; ++i) {
    std::string s(rng() % 64, '\0');
    for (char& c : s) c = char(rng() % 4 == 0 ? 0x20 : rng());
    EncodeOptions literal;
    literal.parse_special = false;
    auto back = (*tok)->Decode(*(*tok)->Encode(s, literal));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, Utf8Lossy(s)) << "case " << i;
  }
}

TEST(Tokenizer, DecodeSkipsSpecialTokensOnRequest) {
  LLMPACK_REQUIRE_FIXTURES();
  ScopedTempDir tmp;
  auto tok = LoadFixtureTokenizer(kBpe4k, tmp.path());
  ASSERT_TRUE(tok.ok()) << tok.status();
  const std::vector<int32_t> ids = {0, 44, 546, 83, 1};  // bpe4k_cases.json
  EXPECT_EQ(*(*tok)->Decode(ids), "<|begin_of_text|>Hello<|end_of_text|>");
  EXPECT_EQ(*(*tok)->Decode(ids, /*skip_special=*/true), "Hello");
  StreamingDecoder stream(**tok, /*skip_special=*/true);
  std::string text;
  for (int32_t id : ids) text += stream.Push(id);
  EXPECT_EQ(text + stream.Flush(), "Hello");
}

TEST(TokenizeCommand, PackageDirTextFileAndIds) {
  LLMPACK_REQUIRE_FIXTURES();
  ScopedTempDir tmp;
  ASSERT_TRUE(ConvertFixtureTokenizer(kBpe4k, tmp.path()).ok());
  ASSERT_TRUE(WriteStringToFile(tmp.path() / "in.txt", "Hello world").ok());
  auto json = commands::TokenizeToJson(tmp.path(),
                                       "@" + (tmp.path() / "in.txt").string(),
                                       /*add_special=*/true);
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ(*json, "[0, 44, 546, 83, 1029]");  // bpe4k_cases.json
  auto text =
      commands::DetokenizeIds(tmp.path() / "tokenizer.txt", "44,546 83\n1029");
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, "Hello world");
  EXPECT_EQ(commands::TokenizeToJson(tmp.path() / "missing", "x", false)
                .status()
                .code(),
            absl::StatusCode::kNotFound);
}

TEST(TokenizerTextCodec, EncodesAndStreams) {
  LLMPACK_REQUIRE_FIXTURES();
  ScopedTempDir tmp;
  ASSERT_TRUE(ConvertFixtureTokenizer(kBpe4k, tmp.path()).ok());
  auto codec = verify::TokenizerTextCodec::Load(tmp.path());
  ASSERT_TRUE(codec.ok()) << codec.status();
  auto ids = (*codec)->Encode("Hello world", true);
  ASSERT_TRUE(ids.ok());
  EXPECT_THAT(*ids, ElementsAre(0, 44, 546, 83, 1029));
  std::string text;
  for (size_t i = 1; i < ids->size(); ++i) text += (*codec)->Push((*ids)[i]);
  EXPECT_EQ(text + (*codec)->Flush(), "Hello world");
  EXPECT_EQ(
      verify::TokenizerTextCodec::Load(tmp.path() / "nope").status().code(),
      absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace llmpack::tokenizer
