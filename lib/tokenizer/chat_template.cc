#include "tokenizer/chat_template.h"

#include <algorithm>
#include <cctype>
#include <limits>
#include <memory>

#include "absl/strings/str_cat.h"
#include "llmpack/status_macros.h"
#include "tokenizer/jinja_parse.h"

namespace llmpack::tokenizer {
namespace {

using json = nlohmann::json;
using jinja::IsSpace;
using jinja::Node;
using jinja::Tok;
using jinja::Toks;
using jinja::Trim;

// ---- Evaluation -----------------------------------------------------------

bool Truthy(const json& v) {
  if (v.is_null()) return false;
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_number_integer()) return v.get<int64_t>() != 0;
  if (v.is_number()) return v.get<double>() != 0;
  if (v.is_string() || v.is_array() || v.is_object()) return !v.empty();
  return true;
}

std::string ToText(const json& v) {
  if (v.is_null()) return "";
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "True" : "False";
  return v.dump();
}

std::string StripChars(const std::string& s, bool left, bool right,
                       const std::string& chars = " \t\n\r") {
  size_t b = 0, e = s.size();
  while (left && b < e && chars.find(s[b]) != std::string::npos) ++b;
  while (right && e > b && chars.find(s[e - 1]) != std::string::npos) --e;
  return s.substr(b, e - b);
}

// Python's json.dumps(ensure_ascii=False) spacing: ", " and ": ".
std::string PythonJson(const json& v) {
  if (v.is_array()) {
    std::string out = "[";
    for (size_t i = 0; i < v.size(); ++i) {
      if (i) out += ", ";
      out += PythonJson(v[i]);
    }
    return out + "]";
  }
  if (v.is_object()) {
    std::string out = "{";
    bool first = true;
    for (const auto& [k, e] : v.items()) {
      if (!first) out += ", ";
      first = false;
      out += json(k).dump() + ": " + PythonJson(e);
    }
    return out + "}";
  }
  return v.dump();
}

class Evaluator {
 public:
  explicit Evaluator(const json& globals) { scopes_.push_back(globals); }

  absl::Status Render(const std::vector<Node>& nodes, std::string* out) {
    for (const Node& n : nodes) {
      RETURN_IF_ERROR(Spend(1));
      switch (n.kind) {
        case Node::kText:
          *out += n.text;
          RETURN_IF_ERROR(CheckOutput(*out));
          break;
        case Node::kOutput: {
          ASSIGN_OR_RETURN(json v, Eval(n.expr));
          *out += ToText(v);
          RETURN_IF_ERROR(CheckOutput(*out));
          break;
        }
        case Node::kSet: {
          ASSIGN_OR_RETURN(json v, Eval(n.expr));
          RETURN_IF_ERROR(Assign(n.text, std::move(v)));
          break;
        }
        case Node::kIf: {
          bool done = false;
          for (const auto& [cond, body] : n.branches) {
            ASSIGN_OR_RETURN(json v, Eval(cond));
            if (Truthy(v)) {
              RETURN_IF_ERROR(Render(body, out));
              done = true;
              break;
            }
          }
          if (!done) RETURN_IF_ERROR(Render(n.else_body, out));
          break;
        }
        case Node::kFor: {
          ASSIGN_OR_RETURN(json seq, Eval(n.expr));
          if (seq.is_null()) break;
          if (!seq.is_array()) {
            return absl::InvalidArgumentError(absl::StrCat(
                "chat template: 'for ", n.text, "' over a non-list"));
          }
          const int64_t len = static_cast<int64_t>(seq.size());
          for (int64_t k = 0; k < len; ++k) {
            RETURN_IF_ERROR(Spend(8));  // the scope object: 8 value nodes
            json scope = json::object();
            scope[n.text] = seq[k];
            scope["loop"] = {{"index0", k},
                             {"index", k + 1},
                             {"first", k == 0},
                             {"last", k + 1 == len},
                             {"length", len}};
            scopes_.push_back(std::move(scope));
            absl::Status s = Render(n.body, out);
            scopes_.pop_back();
            RETURN_IF_ERROR(s);
          }
          break;
        }
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<json> Eval(const Toks& toks) {
    toks_ = &toks;
    pos_ = 0;
    ASSIGN_OR_RETURN(json v, Or());
    if (Peek().kind != Tok::kEnd) {
      return Error(absl::StrCat("unexpected '", Peek().s, "'"));
    }
    return v;
  }

 private:
  // Token lists end with kEnd (jinja::Tokenize); a parser step that consumed
  // it (e.g. "x is" at the end) keeps reading kEnd, not past the vector.
  const Tok& Peek() const {
    return (*toks_)[std::min(pos_, toks_->size() - 1)];
  }
  bool IsOp(const char* op) const {
    return Peek().kind == Tok::kOp && Peek().s == op;
  }
  bool IsWord(const char* w) const {
    return Peek().kind == Tok::kName && Peek().s == w;
  }
  absl::Status Error(const std::string& what) const {
    return absl::InvalidArgumentError(absl::StrCat("chat template: ", what));
  }
  // Work accounting: every step and every value node copied or built is
  // spent from one budget, so total time and memory stay bounded whatever
  // the template does (see the limits in chat_template.h).
  absl::Status Spend(uint64_t units) {
    work_ += units;
    if (work_ > kChatTemplateMaxWork) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "chat template: rendering exceeded ", kChatTemplateMaxWork,
          " steps (a runaway loop or an exploding value?)"));
    }
    return absl::OkStatus();
  }
  // Spends the size of `v` node by node, stopping as soon as the budget is
  // gone (so a huge value costs at most the rest of the budget to measure).
  absl::Status Charge(const json& v) {
    std::vector<const json*> stack = {&v};
    while (!stack.empty()) {
      const json* x = stack.back();
      stack.pop_back();
      RETURN_IF_ERROR(Spend(
          1 +
          (x->is_string() ? x->get_ref<const std::string&>().size() / 64 : 0)));
      if (x->is_structured()) {
        for (const json& e : *x) stack.push_back(&e);
      }
    }
    return absl::OkStatus();
  }
  absl::Status CheckString(const json& v) const {
    if (v.is_string() &&
        v.get_ref<const std::string&>().size() > kChatTemplateMaxOutputBytes) {
      return absl::ResourceExhaustedError(
          absl::StrCat("chat template: a string value exceeds ",
                       kChatTemplateMaxOutputBytes, " bytes"));
    }
    return absl::OkStatus();
  }
  static absl::Status CheckOutput(const std::string& out) {
    if (out.size() > kChatTemplateMaxOutputBytes) {
      return absl::ResourceExhaustedError(
          absl::StrCat("chat template: output exceeds ",
                       kChatTemplateMaxOutputBytes, " bytes"));
    }
    return absl::OkStatus();
  }
  // Held while a recursive rule runs; refuses nesting past kMaxNesting.
  class Nest {
   public:
    explicit Nest(int* depth) : depth_(depth) { ++*depth_; }
    ~Nest() { --*depth_; }
    Nest(const Nest&) = delete;
    Nest& operator=(const Nest&) = delete;
    absl::Status Check() const {
      if (*depth_ <= jinja::kMaxNesting) return absl::OkStatus();
      return absl::ResourceExhaustedError(absl::StrCat(
          "chat template: expression nested deeper than ", jinja::kMaxNesting));
    }

   private:
    int* depth_;
  };

  absl::Status Expect(const char* op) {
    if (!IsOp(op)) return Error(absl::StrCat("expected '", op, "'"));
    ++pos_;
    return absl::OkStatus();
  }

  // `name` or `ns.attr` (a namespace() object, mutable from inner scopes).
  absl::Status Assign(const std::string& target, json v) {
    const size_t dot = target.find('.');
    if (dot == std::string::npos) {
      scopes_.back()[target] = std::move(v);
      return absl::OkStatus();
    }
    const std::string name = Trim(target.substr(0, dot));
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      auto f = it->find(name);
      if (f != it->end() && f->is_object()) {
        (*f)[Trim(target.substr(dot + 1))] = std::move(v);
        return absl::OkStatus();
      }
    }
    return Error(
        absl::StrCat("'set ", target, "': ", name, " is not a namespace"));
  }

  const json* Find(const std::string& name) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      auto f = it->find(name);
      if (f != it->end()) return &*f;
    }
    return nullptr;
  }

  absl::StatusOr<json> Or() {
    const Nest nest(&depth_);
    RETURN_IF_ERROR(nest.Check());
    ASSIGN_OR_RETURN(json v, And());
    while (IsWord("or")) {
      ++pos_;
      ASSIGN_OR_RETURN(json r, And());
      v = Truthy(v) || Truthy(r);
    }
    return v;
  }
  absl::StatusOr<json> And() {
    ASSIGN_OR_RETURN(json v, Not());
    while (IsWord("and")) {
      ++pos_;
      ASSIGN_OR_RETURN(json r, Not());
      v = Truthy(v) && Truthy(r);
    }
    return v;
  }
  absl::StatusOr<json> Not() {
    if (IsWord("not")) {
      ++pos_;
      const Nest nest(&depth_);
      RETURN_IF_ERROR(nest.Check());
      ASSIGN_OR_RETURN(json v, Not());
      return json(!Truthy(v));
    }
    return Compare();
  }
  absl::StatusOr<json> Compare() {
    ASSIGN_OR_RETURN(json l, Concat());
    if (IsWord("is")) {
      ++pos_;
      bool negate = false;
      if (IsWord("not")) {
        ++pos_;
        negate = true;
      }
      const std::string test = Peek().s;
      ++pos_;
      bool r;
      if (test == "defined") {
        r = !l.is_null();
      } else if (test == "none") {
        r = l.is_null();
      } else if (test == "string") {
        r = l.is_string();
      } else if (test == "false" || test == "true") {
        r = l.is_boolean() && l.get<bool>() == (test == "true");
      } else {
        return Error(absl::StrCat("unsupported test 'is ", test, "'"));
      }
      return json(r != negate);
    }
    bool negate_in = false;
    if (IsWord("not") && (*toks_)[pos_ + 1].kind == Tok::kName &&
        (*toks_)[pos_ + 1].s == "in") {
      ++pos_;
      negate_in = true;
    }
    if (IsWord("in")) {
      ++pos_;
      ASSIGN_OR_RETURN(json r, Concat());
      bool found = false;
      if (r.is_string() && l.is_string()) {
        found = r.get<std::string>().find(l.get<std::string>()) !=
                std::string::npos;
      } else if (r.is_array()) {
        for (const json& e : r) found = found || e == l;
      } else if (r.is_object() && l.is_string()) {
        found = r.contains(l.get<std::string>());
      }
      return json(found != negate_in);
    }
    for (const char* op : {"==", "!=", "<", ">", "<=", ">="}) {
      if (!IsOp(op)) continue;
      ++pos_;
      ASSIGN_OR_RETURN(json r, Concat());
      const std::string o = op;
      if (o == "==") return json(l == r);
      if (o == "!=") return json(l != r);
      if (o == "<") return json(l < r);
      if (o == ">") return json(l > r);
      if (o == "<=") return json(l <= r);
      return json(l >= r);
    }
    return l;
  }
  absl::StatusOr<json> Concat() {
    ASSIGN_OR_RETURN(json v, Add());
    while (IsOp("~")) {
      ++pos_;
      ASSIGN_OR_RETURN(json r, Add());
      v = ToText(v) + ToText(r);
      RETURN_IF_ERROR(CheckString(v));
    }
    return v;
  }
  absl::StatusOr<json> Add() {
    ASSIGN_OR_RETURN(json v, Mul());
    while (IsOp("+") || IsOp("-")) {
      const bool plus = IsOp("+");
      ++pos_;
      ASSIGN_OR_RETURN(json r, Mul());
      if (v.is_number_integer() && r.is_number_integer()) {
        const int64_t a = v.get<int64_t>(), b = r.get<int64_t>();
        int64_t sum;
        if (plus ? __builtin_add_overflow(a, b, &sum)
                 : __builtin_sub_overflow(a, b, &sum)) {
          return Error(
              absl::StrCat("integer overflow in ", a, plus ? " + " : " - ", b));
        }
        v = sum;
      } else if (plus && v.is_string() && r.is_string()) {
        v = v.get<std::string>() + r.get<std::string>();
        RETURN_IF_ERROR(CheckString(v));
      } else if (plus && v.is_array() && r.is_array()) {
        for (const json& e : r) v.push_back(e);
        RETURN_IF_ERROR(Charge(v));
      } else {
        return Error(absl::StrCat("cannot apply '", plus ? "+" : "-", "' to ",
                                  v.type_name(), " and ", r.type_name()));
      }
    }
    return v;
  }
  // * / // % on integers (Python semantics for // and %).
  absl::StatusOr<json> Mul() {
    ASSIGN_OR_RETURN(json v, Unary());
    while (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%")) {
      const std::string op = Peek().s;
      ++pos_;
      ASSIGN_OR_RETURN(json r, Unary());
      if (!v.is_number_integer() || !r.is_number_integer()) {
        return Error(absl::StrCat("'", op, "' needs integers"));
      }
      const int64_t a = v.get<int64_t>(), b = r.get<int64_t>();
      if (op == "*") {
        int64_t product;
        if (__builtin_mul_overflow(a, b, &product)) {
          return Error(absl::StrCat("integer overflow in ", a, " * ", b));
        }
        v = product;
        continue;
      }
      if (b == 0) return Error("division by zero");
      if (op == "/") {
        v = double(a) / double(b);
      } else if (a == std::numeric_limits<int64_t>::min() && b == -1) {
        // The one int64 quotient that does not fit; its remainder is 0.
        if (op == "//") {
          return Error(absl::StrCat("integer overflow in ", a, " // -1"));
        }
        v = 0;
      } else {
        int64_t q = a / b, m = a % b;
        if (m != 0 && ((m < 0) != (b < 0))) {  // floor; m + b cannot overflow
          --q;
          m += b;
        }
        v = op == "//" ? q : m;
      }
    }
    return v;
  }
  absl::StatusOr<json> Unary() {
    if (IsOp("-")) {
      ++pos_;
      const Nest nest(&depth_);
      RETURN_IF_ERROR(nest.Check());
      ASSIGN_OR_RETURN(json v, Unary());
      if (!v.is_number_integer()) return Error("unary '-' on a non-integer");
      const int64_t a = v.get<int64_t>();
      if (a == std::numeric_limits<int64_t>::min()) {
        return Error(absl::StrCat("integer overflow in -(", a, ")"));
      }
      return json(-a);
    }
    return Postfix();
  }
  // Positional arguments; keyword arguments (name=value) go to *kwargs.
  absl::StatusOr<std::vector<json>> Args(json* kwargs = nullptr) {
    std::vector<json> args;
    RETURN_IF_ERROR(Expect("("));
    while (!IsOp(")")) {
      if (Peek().kind == Tok::kName && (*toks_)[pos_ + 1].kind == Tok::kOp &&
          (*toks_)[pos_ + 1].s == "=") {
        const std::string key = Peek().s;
        pos_ += 2;
        ASSIGN_OR_RETURN(json a, Or());
        if (kwargs == nullptr) return Error("unexpected keyword argument");
        (*kwargs)[key] = std::move(a);
      } else {
        ASSIGN_OR_RETURN(json a, Or());
        args.push_back(std::move(a));
      }
      if (!IsOp(",")) break;
      ++pos_;
    }
    RETURN_IF_ERROR(Expect(")"));
    return args;
  }

  // Python slice [start:stop:step] of a list or string.
  absl::StatusOr<json> Slice(const json& v, const json& start) {
    json parts[3] = {start, nullptr, nullptr};
    for (int k = 1; k < 3 && IsOp(":"); ++k) {
      ++pos_;
      if (!IsOp(":") && !IsOp("]")) {
        ASSIGN_OR_RETURN(parts[k], Or());
      }
    }
    RETURN_IF_ERROR(Expect("]"));
    const int64_t step =
        parts[2].is_number_integer() ? parts[2].get<int64_t>() : 1;
    if (step == 0) return Error("slice step cannot be zero");
    const bool is_str = v.is_string();
    if (!is_str && !v.is_array()) return json(nullptr);
    const int64_t n = is_str ? v.get<std::string>().size() : v.size();
    auto bound = [&](const json& p, int64_t dflt) {
      if (!p.is_number_integer()) return dflt;
      int64_t i = p.get<int64_t>();
      if (i < 0) i += n;
      return step > 0 ? std::clamp<int64_t>(i, 0, n)
                      : std::clamp<int64_t>(i, -1, n - 1);
    };
    const int64_t b = bound(parts[0], step > 0 ? 0 : n - 1);
    const int64_t e = bound(parts[1], step > 0 ? n : -1);
    json out = is_str ? json("") : json::array();
    std::string str;
    for (int64_t i = b; step > 0 ? i < e : i > e;) {
      if (is_str) {
        str += v.get<std::string>()[i];
      } else {
        out.push_back(v[i]);
      }
      if (__builtin_add_overflow(i, step, &i)) break;  // past either end
    }
    if (!is_str) RETURN_IF_ERROR(Charge(out));
    return is_str ? json(str) : out;
  }
  absl::StatusOr<json> Postfix() {
    ASSIGN_OR_RETURN(json v, Primary());
    while (true) {
      if (IsOp(".")) {
        ++pos_;
        if (Peek().kind != Tok::kName)
          return Error("expected a name after '.'");
        const std::string name = Peek().s;
        ++pos_;
        if (IsOp("(")) {
          ASSIGN_OR_RETURN(std::vector<json> args, Args());
          ASSIGN_OR_RETURN(v, Method(v, name, args));
        } else {
          v = v.is_object() && v.contains(name) ? v[name] : json(nullptr);
        }
      } else if (IsOp("[")) {
        ++pos_;
        json key = nullptr;
        if (!IsOp(":")) {
          ASSIGN_OR_RETURN(key, Or());
        }
        if (IsOp(":")) {
          ASSIGN_OR_RETURN(v, Slice(v, key));
          continue;
        }
        RETURN_IF_ERROR(Expect("]"));
        if (v.is_object() && key.is_string()) {
          v = v.contains(key.get<std::string>()) ? v[key.get<std::string>()]
                                                 : json(nullptr);
        } else if (v.is_array() && key.is_number_integer()) {
          int64_t k = key.get<int64_t>();
          if (k < 0) k += static_cast<int64_t>(v.size());
          v = k >= 0 && k < static_cast<int64_t>(v.size()) ? v[k]
                                                           : json(nullptr);
        } else {
          v = nullptr;
        }
      } else if (IsOp("|")) {
        ++pos_;
        if (Peek().kind != Tok::kName)
          return Error("expected a filter after '|'");
        const std::string f = Peek().s;
        ++pos_;
        if (f == "trim") {
          v = StripChars(ToText(v), true, true);
        } else if (f == "tojson") {
          v = PythonJson(v);
          RETURN_IF_ERROR(CheckString(v));
        } else if (f == "length") {
          v = v.is_string() ? v.get<std::string>().size() : v.size();
        } else if (f == "upper" || f == "lower") {
          std::string s = ToText(v);
          for (char& c : s)
            c = f == "upper" ? std::toupper(uint8_t(c))
                             : std::tolower(uint8_t(c));
          v = s;
        } else {
          return Error(absl::StrCat("unsupported filter '", f, "'"));
        }
      } else {
        return v;
      }
    }
  }
  absl::StatusOr<json> Method(const json& v, const std::string& name,
                              const std::vector<json>& args) {
    const std::string s = ToText(v);
    if (name == "strip" || name == "lstrip" || name == "rstrip") {
      const std::string chars = !args.empty() && args[0].is_string()
                                    ? args[0].get<std::string>()
                                    : " \t\n\r";
      return json(StripChars(s, name != "rstrip", name != "lstrip", chars));
    }
    if (name == "split" && args.size() == 1 && args[0].is_string() &&
        !args[0].get<std::string>().empty()) {
      const std::string sep = args[0].get<std::string>();
      json parts = json::array();
      size_t start = 0;
      for (size_t p; (p = s.find(sep, start)) != std::string::npos;
           start = p + sep.size()) {
        parts.push_back(s.substr(start, p - start));
      }
      parts.push_back(s.substr(start));
      RETURN_IF_ERROR(Charge(parts));
      return parts;
    }
    if ((name == "startswith" || name == "endswith") && args.size() == 1 &&
        args[0].is_string()) {
      const std::string a = args[0].get<std::string>();
      const bool r = a.size() <= s.size() &&
                     (name == "startswith"
                          ? s.compare(0, a.size(), a) == 0
                          : s.compare(s.size() - a.size(), a.size(), a) == 0);
      return json(r);
    }
    if (name == "upper" || name == "lower") {
      std::string t = s;
      for (char& c : t)
        c = name == "upper" ? std::toupper(uint8_t(c))
                            : std::tolower(uint8_t(c));
      return json(t);
    }
    return Error(absl::StrCat("unsupported method '.", name, "()'"));
  }
  absl::StatusOr<json> Primary() {
    const Tok t = Peek();
    ++pos_;
    switch (t.kind) {
      case Tok::kString:
        return json(t.s);
      case Tok::kInt:
        return json(t.i);
      case Tok::kName:
        if (t.s == "true" || t.s == "True") return json(true);
        if (t.s == "false" || t.s == "False") return json(false);
        if (t.s == "none" || t.s == "None") return json(nullptr);
        if (t.s == "namespace" && IsOp("(")) {
          json kwargs = json::object();
          ASSIGN_OR_RETURN(std::vector<json> args, Args(&kwargs));
          if (!args.empty())
            return Error("namespace() takes keyword arguments");
          return kwargs;
        }
        if (t.s == "raise_exception" && IsOp("(")) {
          ASSIGN_OR_RETURN(std::vector<json> args, Args());
          return Error(absl::StrCat("template raised: ",
                                    args.empty() ? "" : ToText(args[0])));
        }
        {
          // Charged before the copy is made, so an exploding value stops
          // before it is materialized once more.
          const json* v = Find(t.s);
          if (v == nullptr) return json(nullptr);
          RETURN_IF_ERROR(Charge(*v));
          return *v;
        }
      case Tok::kOp:
        if (t.s == "(") {
          ASSIGN_OR_RETURN(json v, Or());
          RETURN_IF_ERROR(Expect(")"));
          return v;
        }
        if (t.s == "[") {
          json list = json::array();
          while (!IsOp("]")) {
            ASSIGN_OR_RETURN(json e, Or());
            list.push_back(std::move(e));
            if (!IsOp(",")) break;
            ++pos_;
          }
          RETURN_IF_ERROR(Expect("]"));
          RETURN_IF_ERROR(Charge(list));
          return list;
        }
        return Error(absl::StrCat("unexpected '", t.s, "'"));
      case Tok::kEnd:
        return Error("expression ends early");
    }
    return Error("bad expression");
  }

  std::vector<json> scopes_;
  const Toks* toks_ = nullptr;
  size_t pos_ = 0;
  uint64_t work_ = 0;  // units spent in this render
  int depth_ = 0;      // recursive expression rules active
};

absl::StatusOr<std::string> RenderUnchecked(const std::string& source,
                                            const json& variables) {
  ASSIGN_OR_RETURN(std::vector<Node> nodes, jinja::ParseTemplate(source));
  Evaluator eval(variables.is_object() ? variables : json::object());
  std::string out;
  RETURN_IF_ERROR(eval.Render(nodes, &out));
  return out;
}

}  // namespace

absl::StatusOr<std::string> RenderJinjaTemplate(const std::string& source,
                                                const json& variables) {
  // Out-of-range integer literals and type mismatches inside nlohmann throw;
  // a broken template is bad input.
  try {
    return RenderUnchecked(source, variables);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("chat template: ", e.what()));
  }
}

absl::StatusOr<std::string> RenderChatTemplate(
    const std::string& chat_template, const std::vector<ChatMessage>& messages,
    const ChatTemplateOptions& options) {
  json vars = json::object();
  vars["messages"] = json::array();
  for (const ChatMessage& m : messages) {
    vars["messages"].push_back({{"role", m.role}, {"content", m.content}});
  }
  vars["add_generation_prompt"] = options.add_generation_prompt;
  vars["bos_token"] = options.bos_token;
  vars["eos_token"] = options.eos_token;
  return RenderJinjaTemplate(chat_template, vars);
}

}  // namespace llmpack::tokenizer
