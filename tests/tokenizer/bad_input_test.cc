// Bad inputs give clear errors (never crashes): malformed tokenizer.json,
// unknown model types, invalid base64, duplicate tokens, ids out of range.
#include <string>

#include "commands/tokenize_command.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "llmpack/file_util.h"
#include "support/test_paths.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/convert_tokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_file.h"

namespace llmpack::tokenizer {
namespace {

using ::llmpack::testing::ScopedTempDir;
using ::testing::HasSubstr;

std::string Message(const absl::Status& s) { return std::string(s.message()); }

// A valid byte-level tokenizer.txt with tokens "a", "b", "ab".
std::string SmallTokenizerTxt() {
  TokenizerSpec spec;
  spec.tokens = {"a", "b", "ab"};
  return SerializeTokenizerSpec(spec);
}

absl::Status ConvertJsonText(const ScopedTempDir& tmp,
                             const std::string& text) {
  const auto src = tmp.path() / "tokenizer.json";
  EXPECT_TRUE(WriteStringToFile(src, text).ok());
  return ConvertTokenizerFile(src, tmp.path() / "tokenizer.txt");
}

TEST(TokenizerBadInput, MalformedTokenizerJson) {
  ScopedTempDir tmp;
  const absl::Status s =
      ConvertJsonText(tmp, R"({"model": {"type": "BPE", "vocab": {)");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s), HasSubstr("malformed JSON"));
  EXPECT_THAT(Message(s), HasSubstr("tokenizer.json"));
  EXPECT_THAT(Message(ConvertJsonText(tmp, R"({"version": "1.0"})")),
              HasSubstr("no 'model'"));
  EXPECT_THAT(Message(ConvertJsonText(
                  tmp, R"({"model": {"type": "BPE", "vocab": {"a": 0},
                           "merges": ["a q"]}})")),
              HasSubstr("merge 0"));
  EXPECT_FALSE(std::filesystem::exists(tmp.path() / "tokenizer.txt"));
}

TEST(TokenizerBadInput, WrongValueTypes) {
  ScopedTempDir tmp;
  const absl::Status s = ConvertJsonText(
      tmp, R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
               "pre_tokenizer": {"type": "Split", "behavior": 5},
               "decoder": {"type": "ByteLevel"}})");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s), HasSubstr("unexpected tokenizer.json structure"));
  ASSERT_TRUE(WriteStringToFile(tmp.path() / "tokenizer.json",
                                R"({"model": {"type": "BPE", "vocab": {"a": 0},
                                    "merges": []},
                                    "decoder": {"type": "ByteLevel"}})")
                  .ok());
  ASSERT_TRUE(WriteStringToFile(tmp.path() / "generation_config.json",
                                R"({"eos_token_id": [1, "x", {"a": 1}]})")
                  .ok());
  ASSERT_TRUE(WriteStringToFile(tmp.path() / "tokenizer_config.json",
                                R"({"chat_template": [7, {"name": 1}]})")
                  .ok());
  ModelConfig config;
  const absl::Status dir =
      ConvertTokenizerDir(tmp.path(), tmp.path() / "out.txt", &config);
  EXPECT_FALSE(dir.ok());
}

TEST(TokenizerBadInput, UnknownModelType) {
  ScopedTempDir tmp;
  const absl::Status s = ConvertJsonText(
      tmp, R"({"model": {"type": "WordPiece", "vocab": {"a": 0}}})");
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(Message(s), HasSubstr("WordPiece"));
  const absl::Status pre = ConvertJsonText(
      tmp, R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
               "pre_tokenizer": {"type": "BertPreTokenizer"}})");
  EXPECT_THAT(Message(pre), HasSubstr("BertPreTokenizer"));
}

TEST(TokenizerBadInput, SentencePieceModelTypeAndGarbage) {
  ScopedTempDir tmp;
  // ModelProto{pieces: [{piece: "a"}], trainer_spec: {model_type: UNIGRAM}}
  const std::string unigram(
      "\x0A\x03\x0A\x01"
      "a"
      "\x12\x02\x18\x01",
      9);
  const auto model = tmp.path() / "tokenizer.model";
  ASSERT_TRUE(WriteStringToFile(model, unigram).ok());
  absl::Status s = ConvertTokenizerFile(model, tmp.path() / "out.txt");
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(Message(s), HasSubstr("UNIGRAM"));
  ASSERT_TRUE(WriteStringToFile(model, "\xff\xff\xff\xff garbage").ok());
  s = ConvertTokenizerFile(model, tmp.path() / "out.txt");
  EXPECT_THAT(Message(s), HasSubstr("not a sentencepiece model"));
}

TEST(TokenizerBadInput, DuplicateIdsInVocab) {
  ScopedTempDir tmp;
  const absl::Status s = ConvertJsonText(
      tmp,
      R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 0}, "merges": []},
               "decoder": {"type": "ByteLevel"}})");
  EXPECT_THAT(Message(s), HasSubstr("duplicate token id 0"));
}

TEST(TokenizerBadInput, HugeOrSparseIds) {
  ScopedTempDir tmp;
  const absl::Status s = ConvertJsonText(
      tmp, R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 2000000000},
               "merges": []}, "decoder": {"type": "ByteLevel"}})");
  EXPECT_THAT(Message(s), HasSubstr("not dense"));
  const absl::Status negative = ConvertJsonText(
      tmp, R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
               "added_tokens": [{"id": -5, "content": "<x>"}],
               "decoder": {"type": "ByteLevel"}})");
  EXPECT_THAT(Message(negative), HasSubstr("added token id -5"));
}

TEST(TokenizerBadInput, InvalidBase64InTokenizerTxt) {
  std::string text = SmallTokenizerTxt();
  const size_t p = text.find("YWI=");  // "ab"
  ASSERT_NE(p, std::string::npos);
  text.replace(p, 4, "Y*I=");
  auto spec = ParseTokenizerSpec(text, "t.txt");
  ASSERT_FALSE(spec.ok());
  EXPECT_THAT(Message(spec.status()), HasSubstr("invalid base64"));
  EXPECT_THAT(Message(spec.status()), HasSubstr("token 2"));
}

TEST(TokenizerBadInput, InvalidBase64InTiktokenRanks) {
  TiktokenOptions options;
  auto spec =
      SpecFromTiktokenRanks("YQ== 0\nY!== 1\n", options, "ranks.tiktoken");
  ASSERT_FALSE(spec.ok());
  EXPECT_THAT(Message(spec.status()), HasSubstr("ranks.tiktoken:2"));
  EXPECT_THAT(Message(spec.status()), HasSubstr("invalid base64"));
  auto gap =
      SpecFromTiktokenRanks("YQ== 0\nYg== 2\n", options, "ranks.tiktoken");
  EXPECT_THAT(Message(gap.status()), HasSubstr("without gaps"));
}

TEST(TokenizerBadInput, DuplicateTokens) {
  std::string text = SmallTokenizerTxt();
  const size_t p = text.find("Yg==");  // "b" becomes a second "a"
  text.replace(p, 4, "YQ==");
  auto spec = ParseTokenizerSpec(text, "t.txt");
  ASSERT_FALSE(spec.ok());
  EXPECT_THAT(Message(spec.status()),
              HasSubstr("duplicate token: ids 0 and 1"));
  auto tik = SpecFromTiktokenRanks("YQ== 0\nYQ== 1\n", TiktokenOptions(), "r");
  EXPECT_THAT(Message(tik.status()), HasSubstr("duplicate token"));
}

TEST(TokenizerBadInput, TruncatedAndUnknownHeader) {
  std::string text = SmallTokenizerTxt();
  auto truncated =
      ParseTokenizerSpec(text.substr(0, text.size() - 10), "t.txt");
  EXPECT_FALSE(truncated.ok());
  std::string unknown = text;
  unknown.insert(unknown.find('\n') + 1, "frobnicate 1\n");
  EXPECT_THAT(Message(ParseTokenizerSpec(unknown, "t.txt").status()),
              HasSubstr("unknown header key 'frobnicate'"));
  EXPECT_THAT(Message(ParseTokenizerSpec("hello\n", "t.txt").status()),
              HasSubstr("not a tokenizer.txt"));
  std::string bad_bos = text;
  bad_bos.replace(bad_bos.find("bos_id -1"), 9, "bos_id 7");
  EXPECT_THAT(Message(ParseTokenizerSpec(bad_bos, "t.txt").status()),
              HasSubstr("bos_id 7 is out of range"));
  std::string bad_stop = text;
  bad_stop.replace(bad_stop.find("stop_ids -"), 10, "stop_ids 1,-1");
  EXPECT_THAT(Message(ParseTokenizerSpec(bad_stop, "t.txt").status()),
              HasSubstr("stop id -1 is out of range"));
}

TEST(TokenizerBadInput, IdsOutOfRange) {
  ScopedTempDir tmp;
  const auto path = tmp.path() / "tokenizer.txt";
  ASSERT_TRUE(WriteStringToFile(path, SmallTokenizerTxt()).ok());
  auto tok = Tokenizer::Load(path);
  ASSERT_TRUE(tok.ok()) << tok.status();
  auto decoded = (*tok)->Decode({0, 3});
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(Message(decoded.status()), HasSubstr("token id 3 at position 1"));
  EXPECT_FALSE((*tok)->Decode({-1}).ok());
  auto cli = commands::DetokenizeIds(path, "[0, 99]");
  EXPECT_THAT(Message(cli.status()), HasSubstr("99"));
  EXPECT_THAT(Message(commands::DetokenizeIds(path, "0 x").status()),
              HasSubstr("'x' is not an integer"));
  StreamingDecoder stream(**tok);
  EXPECT_EQ(stream.Push(0) + stream.Push(42), "a\xEF\xBF\xBD");
}

TEST(TokenizerBadInput, ChatTemplateLiteralOutOfRange) {
  auto out = RenderJinjaTemplate("{{ 99999999999999999999999 }}",
                                 nlohmann::json::object());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace llmpack::tokenizer
