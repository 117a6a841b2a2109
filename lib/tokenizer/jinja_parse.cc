// Lexing and parsing of the Jinja subset (see chat_template.h).
#include "tokenizer/jinja_parse.h"

#include <cctype>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "llmpack/status_macros.h"

namespace llmpack::tokenizer::jinja {
namespace {

// ---- Template segments ----------------------------------------------------

struct Segment {
  enum Kind { kText, kExpr, kStmt } kind;
  std::string body;
};

// Splits the source into text and tags, applying "-" whitespace control and
// transformers' trim_blocks / lstrip_blocks for statement tags.
absl::StatusOr<std::vector<Segment>> Lex(const std::string& src) {
  std::vector<Segment> out;
  size_t i = 0;
  while (i <= src.size()) {
    size_t p = i;
    while (p < src.size() &&
           !(src[p] == '{' && p + 1 < src.size() &&
             (src[p + 1] == '{' || src[p + 1] == '%' || src[p + 1] == '#'))) {
      ++p;
    }
    std::string text = src.substr(i, p - i);
    if (p >= src.size()) {
      if (!text.empty()) out.push_back({Segment::kText, text});
      break;
    }
    const char open = src[p + 1];
    const char* close = open == '{' ? "}}" : open == '%' ? "%}" : "#}";
    const size_t q = src.find(close, p + 2);
    if (q == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("chat template: unterminated tag at offset ", p));
    }
    const bool strip_before = p + 2 < q && src[p + 2] == '-';
    const bool strip_after = q > p + 2 && src[q - 1] == '-';
    const bool block = open != '{';
    if (strip_before) {
      while (!text.empty() && IsSpace(text.back())) text.pop_back();
    } else if (block) {
      // lstrip_blocks: drop spaces/tabs between a line start and the tag.
      size_t k = text.size();
      while (k > 0 && (text[k - 1] == ' ' || text[k - 1] == '\t')) --k;
      const bool line_start =
          k > 0 ? text[k - 1] == '\n' : (i == 0 || src[i - 1] == '\n');
      if (line_start) text.resize(k);
    }
    if (!text.empty()) out.push_back({Segment::kText, text});
    const size_t body_start = p + 2 + (strip_before ? 1 : 0);
    const size_t body_end = q - (strip_after ? 1 : 0);
    if (open != '#') {
      out.push_back({open == '{' ? Segment::kExpr : Segment::kStmt,
                     Trim(src.substr(body_start, body_end - body_start))});
    }
    i = q + 2;
    if (strip_after) {
      while (i < src.size() && IsSpace(src[i])) ++i;
    } else if (block && i < src.size() && src[i] == '\n') {
      ++i;  // trim_blocks
    }
  }
  return out;
}

// ---- Expression tokens ----------------------------------------------------

absl::StatusOr<Toks> Tokenize(const std::string& e) {
  Toks out;
  size_t i = 0;
  while (i < e.size()) {
    const char c = e[i];
    if (IsSpace(c)) {
      ++i;
    } else if (std::isalpha(uint8_t(c)) || c == '_') {
      size_t j = i;
      while (j < e.size() && (std::isalnum(uint8_t(e[j])) || e[j] == '_')) ++j;
      out.push_back({Tok::kName, e.substr(i, j - i)});
      i = j;
    } else if (std::isdigit(uint8_t(c))) {
      size_t j = i;
      while (j < e.size() && std::isdigit(uint8_t(e[j]))) ++j;
      int64_t value;
      if (!absl::SimpleAtoi(e.substr(i, j - i), &value)) {
        return absl::InvalidArgumentError(
            absl::StrCat("chat template: integer literal ", e.substr(i, j - i),
                         " does not fit in 64 bits"));
      }
      out.push_back({Tok::kInt, "", value});
      i = j;
    } else if (c == '\'' || c == '"') {
      std::string s;
      size_t j = i + 1;
      for (; j < e.size() && e[j] != c; ++j) {
        if (e[j] == '\\' && j + 1 < e.size()) {
          const char n = e[++j];
          s += n == 'n' ? '\n' : n == 't' ? '\t' : n == 'r' ? '\r' : n;
        } else {
          s += e[j];
        }
      }
      if (j >= e.size()) {
        return absl::InvalidArgumentError(
            absl::StrCat("chat template: unterminated string in '", e, "'"));
      }
      out.push_back({Tok::kString, s});
      i = j + 1;
    } else {
      static const char* kTwo[] = {"==", "!=", "<=", ">=", "//"};
      std::string op(1, c);
      for (const char* t : kTwo) {
        if (e.compare(i, 2, t) == 0) op = t;
      }
      if (op.size() == 1 &&
          std::string("()[]{}.,:+-~|<>=*/%").find(c) == std::string::npos) {
        return absl::InvalidArgumentError(absl::StrCat(
            "chat template: unexpected character '", op, "' in '", e, "'"));
      }
      out.push_back({Tok::kOp, op});
      i += op.size();
    }
  }
  out.push_back({Tok::kEnd, ""});
  return out;
}

// ---- Nodes ----------------------------------------------------------------

std::string FirstWord(const std::string& s) {
  size_t e = 0;
  while (e < s.size() && !IsSpace(s[e])) ++e;
  return s.substr(0, e);
}

std::string AfterFirstWord(const std::string& s) {
  return Trim(s.substr(FirstWord(s).size()));
}

// Parses until one of `ends` (statement keywords); stores the one found.
// `depth` counts the enclosing for/if blocks: deeper nesting than
// kMaxNesting is refused so a hostile template cannot exhaust the stack here,
// in rendering or in destroying the tree.
absl::StatusOr<std::vector<Node>> ParseBlock(
    const std::vector<Segment>& segs, size_t* pos,
    const std::vector<std::string>& ends, std::string* found, int depth) {
  if (depth > kMaxNesting) {
    return absl::ResourceExhaustedError(
        absl::StrCat("chat template: blocks nested deeper than ", kMaxNesting));
  }
  std::vector<Node> nodes;
  while (*pos < segs.size()) {
    const Segment& seg = segs[(*pos)++];
    if (seg.kind == Segment::kText) {
      Node n;
      n.kind = Node::kText;
      n.text = seg.body;
      nodes.push_back(std::move(n));
      continue;
    }
    if (seg.kind == Segment::kExpr) {
      Node n;
      n.kind = Node::kOutput;
      ASSIGN_OR_RETURN(n.expr, Tokenize(seg.body));
      nodes.push_back(std::move(n));
      continue;
    }
    const std::string word = FirstWord(seg.body);
    for (const std::string& e : ends) {
      if (word == e) {
        *found = seg.body;
        return nodes;
      }
    }
    if (word == "for") {
      const std::string rest = AfterFirstWord(seg.body);
      const size_t in = rest.find(" in ");
      if (in == std::string::npos) {
        return absl::InvalidArgumentError(
            absl::StrCat("chat template: malformed '{% ", seg.body, " %}'"));
      }
      Node n;
      n.kind = Node::kFor;
      n.text = Trim(rest.substr(0, in));
      ASSIGN_OR_RETURN(n.expr, Tokenize(rest.substr(in + 4)));
      std::string end;
      ASSIGN_OR_RETURN(n.body,
                       ParseBlock(segs, pos, {"endfor"}, &end, depth + 1));
      if (end.empty()) {
        return absl::InvalidArgumentError("chat template: missing endfor");
      }
      nodes.push_back(std::move(n));
    } else if (word == "if") {
      Node n;
      n.kind = Node::kIf;
      std::string cond = AfterFirstWord(seg.body);
      while (true) {
        ASSIGN_OR_RETURN(Toks t, Tokenize(cond));
        std::string end;
        ASSIGN_OR_RETURN(
            std::vector<Node> body,
            ParseBlock(segs, pos, {"elif", "else", "endif"}, &end, depth + 1));
        n.branches.emplace_back(std::move(t), std::move(body));
        const std::string w = FirstWord(end);
        if (w == "elif") {
          cond = AfterFirstWord(end);
          continue;
        }
        if (w == "else") {
          ASSIGN_OR_RETURN(n.else_body,
                           ParseBlock(segs, pos, {"endif"}, &end, depth + 1));
        }
        if (end.empty()) {
          return absl::InvalidArgumentError("chat template: missing endif");
        }
        break;
      }
      nodes.push_back(std::move(n));
    } else if (word == "set") {
      const std::string rest = AfterFirstWord(seg.body);
      const size_t eq = rest.find('=');
      if (eq == std::string::npos) {
        return absl::InvalidArgumentError(
            absl::StrCat("chat template: malformed '{% ", seg.body, " %}'"));
      }
      Node n;
      n.kind = Node::kSet;
      n.text = Trim(rest.substr(0, eq));
      ASSIGN_OR_RETURN(n.expr, Tokenize(rest.substr(eq + 1)));
      nodes.push_back(std::move(n));
    } else {
      return absl::UnimplementedError(absl::StrCat(
          "chat template: unsupported statement '{% ", seg.body, " %}'"));
    }
  }
  return nodes;
}

}  // namespace

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string Trim(std::string s) {
  size_t b = 0, e = s.size();
  while (b < e && IsSpace(s[b])) ++b;
  while (e > b && IsSpace(s[e - 1])) --e;
  return s.substr(b, e - b);
}

absl::StatusOr<std::vector<Node>> ParseTemplate(const std::string& source) {
  ASSIGN_OR_RETURN(std::vector<Segment> segs, Lex(source));
  size_t pos = 0;
  std::string end;
  return ParseBlock(segs, &pos, {}, &end, 0);
}

}  // namespace llmpack::tokenizer::jinja
