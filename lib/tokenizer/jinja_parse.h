// Internal to chat_template.cc: the Jinja subset's tokens, syntax tree and
// parser (what is supported: chat_template.h). Stateless.
#ifndef LLMPACK_TOKENIZER_JINJA_PARSE_H_
#define LLMPACK_TOKENIZER_JINJA_PARSE_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace llmpack::tokenizer::jinja {

// An expression token.
struct Tok {
  enum Kind { kName, kString, kInt, kOp, kEnd } kind;
  std::string s;
  int64_t i = 0;
};
using Toks = std::vector<Tok>;

// A template node; expressions stay token lists and are evaluated on use.
struct Node {
  enum Kind { kText, kOutput, kFor, kIf, kSet } kind = kText;
  std::string text;  // kText; loop or set variable name
  Toks expr;         // kOutput, kFor (iterable), kSet (value)
  std::vector<Node> body;
  std::vector<std::pair<Toks, std::vector<Node>>> branches;  // kIf
  std::vector<Node> else_body;
};

// Deepest nesting of {% for %}/{% if %} blocks, and of parentheses, list
// literals, call arguments and unary operators in one expression. Real chat
// templates nest a handful deep; 64 keeps recursion far from the stack limit.
inline constexpr int kMaxNesting = 64;

bool IsSpace(char c);
std::string Trim(std::string s);

// Lexes (with transformers' trim_blocks / lstrip_blocks and "-" whitespace
// control) and parses a template.
absl::StatusOr<std::vector<Node>> ParseTemplate(const std::string& source);

}  // namespace llmpack::tokenizer::jinja

#endif  // LLMPACK_TOKENIZER_JINJA_PARSE_H_
