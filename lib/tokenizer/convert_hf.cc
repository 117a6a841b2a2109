// Hugging Face tokenizer.json -> TokenizerSpec.
#include <algorithm>
#include <array>
#include <tuple>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "llmpack/status_macros.h"
#include "tokenizer/convert_tokenizer.h"
#include "tokenizer/utf8_util.h"

namespace llmpack::tokenizer {
namespace {

using json = nlohmann::json;

// GPT-2's split regex, used by a ByteLevel pre-tokenizer with use_regex.
constexpr char kGpt2Pattern[] =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
// Metaspace split=true: each U+2581 starts a new word.
constexpr char kMetaspaceSplitPattern[] =
    "\xE2\x96\x81[^\xE2\x96\x81]*|[^\xE2\x96\x81]+";

absl::Status Bad(const std::string& ctx, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(ctx, ": ", what));
}
absl::Status Unsupported(const std::string& ctx, const std::string& what) {
  return absl::UnimplementedError(absl::StrCat(ctx, ": ", what));
}

// A token id: an integer in [0, INT32_MAX] (a float would convert with
// undefined behaviour).
absl::StatusOr<int32_t> IdValue(const json& v, const std::string& ctx,
                                const std::string& what) {
  if (!v.is_number_integer() || v.get<int64_t>() < 0 ||
      v.get<int64_t>() > INT32_MAX) {
    return Bad(ctx, absl::StrCat(what, " is not a valid token id: ", v.dump()));
  }
  return v.get<int32_t>();
}

std::string TypeOf(const json& j) {
  if (!j.is_object()) return "";
  auto it = j.find("type");
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

bool HasType(const json& j, const std::string& type) {
  if (j.is_null()) return false;
  if (TypeOf(j) == type) return true;
  for (const char* key :
       {"pretokenizers", "decoders", "normalizers", "processors"}) {
    if (j.is_object() && j.contains(key) && j[key].is_array()) {
      for (const json& e : j[key]) {
        if (HasType(e, type)) return true;
      }
    }
  }
  return false;
}

// GPT-2's byte <-> printable character table (bytes_to_unicode).
const std::array<int32_t, 256>& ByteToCodePoint() {
  static const std::array<int32_t, 256> table = [] {
    std::array<int32_t, 256> t{};
    int32_t extra = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) ||
                             (b >= 174 && b <= 255);
      t[b] = printable ? b : extra++;
    }
    return t;
  }();
  return table;
}

absl::StatusOr<std::string> ByteLevelToBytes(const std::string& token,
                                             int64_t id,
                                             const std::string& ctx) {
  static const absl::flat_hash_map<int32_t, uint8_t>* inverse = [] {
    auto* m = new absl::flat_hash_map<int32_t, uint8_t>();
    for (int b = 0; b < 256; ++b) (*m)[ByteToCodePoint()[b]] = uint8_t(b);
    return m;
  }();
  std::string out;
  for (size_t i = 0; i < token.size();) {
    const size_t n = ValidCharLength(token, i);
    const int32_t cp = n == 0 ? -1 : DecodeCodePoint(token, i, n);
    auto it = inverse->find(cp);
    if (it == inverse->end()) {
      return Bad(ctx, absl::StrCat("vocab token '", token, "' (id ", id,
                                   ") has a character outside the byte-level "
                                   "alphabet at byte ",
                                   i));
    }
    out += char(it->second);
    i += n;
  }
  return out;
}

bool ParseBytePiece(const std::string& s, char* byte) {
  if (s.size() != 6 || s.compare(0, 3, "<0x") != 0 || s[5] != '>') return false;
  int v = 0;
  for (int k = 3; k < 5; ++k) {
    const char c = s[k];
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else {
      return false;
    }
    v = v * 16 + d;
  }
  *byte = char(v);
  return true;
}

absl::Status ApplyNormalizer(const json& n, TokenizerSpec* spec,
                             const std::string& ctx) {
  if (n.is_null()) return absl::OkStatus();
  const std::string type = TypeOf(n);
  if (type == "Sequence") {
    for (const json& e : n.value("normalizers", json::array())) {
      RETURN_IF_ERROR(ApplyNormalizer(e, spec, ctx));
    }
  } else if (type == "NFC" || type == "NFKC") {
    spec->normalizer = type == "NFC" ? "nfc" : "nfkc";
  } else if (type == "Prepend" && n.value("prepend", "") == kMetaspace) {
    spec->prepend = PrependScheme::kAlways;
  } else if (type == "Replace" && n.contains("pattern") &&
             n["pattern"].value("String", "") == " " &&
             n.value("content", "") == kMetaspace) {
    spec->space_to_metaspace = true;
  } else {
    return Unsupported(ctx, absl::StrCat("unsupported normalizer ", n.dump()));
  }
  return absl::OkStatus();
}

absl::Status ApplyPreTokenizer(const json& p, TokenizerSpec* spec,
                               const std::string& ctx) {
  if (p.is_null()) return absl::OkStatus();
  const std::string type = TypeOf(p);
  if (type == "Sequence") {
    for (const json& e : p.value("pretokenizers", json::array())) {
      RETURN_IF_ERROR(ApplyPreTokenizer(e, spec, ctx));
    }
  } else if (type == "Split") {
    if (p.value("behavior", "") != "Isolated" || p.value("invert", false)) {
      return Unsupported(ctx,
                         absl::StrCat("Split pre-tokenizer with behavior '",
                                      p.value("behavior", ""),
                                      "' (only Isolated, not inverted)"));
    }
    const json& pat = p.value("pattern", json::object());
    if (pat.contains("Regex") && pat["Regex"].is_string()) {
      spec->split_regexes.push_back(pat["Regex"].get<std::string>());
    } else if (pat.contains("String") && pat["String"].is_string()) {
      spec->split_regexes.push_back(
          absl::StrCat("\\Q", pat["String"].get<std::string>(), "\\E"));
    } else {
      return Bad(ctx, "Split pre-tokenizer without a Regex or String pattern");
    }
  } else if (type == "ByteLevel") {
    if (p.value("add_prefix_space", false)) {
      // GPT-2/RoBERTa: a space before every text segment lacking one.
      spec->prepend = PrependScheme::kAlways;
      spec->prepend_only_if_absent = true;
    }
    if (p.value("use_regex", true)) spec->split_regexes.push_back(kGpt2Pattern);
  } else if (type == "Digits") {
    spec->split_regexes.push_back(
        p.value("individual_digits", false) ? "[0-9]" : "[0-9]+");
  } else if (type == "Metaspace") {
    if (p.value("replacement", kMetaspace) != std::string(kMetaspace)) {
      return Unsupported(ctx, "Metaspace with a replacement other than U+2581");
    }
    spec->space_to_metaspace = true;
    spec->prepend_only_if_absent = true;
    std::string scheme = p.value("prepend_scheme", "");
    if (scheme.empty())
      scheme = p.value("add_prefix_space", true) ? "always" : "never";
    spec->prepend = scheme == "always"  ? PrependScheme::kAlways
                    : scheme == "first" ? PrependScheme::kFirst
                                        : PrependScheme::kNever;
    if (p.value("split", true))
      spec->split_regexes.push_back(kMetaspaceSplitPattern);
  } else {
    return Unsupported(
        ctx, absl::StrCat("unsupported pre-tokenizer type '", type, "'"));
  }
  return absl::OkStatus();
}

absl::Status ApplyPostProcessor(
    const json& p, const absl::flat_hash_map<std::string, int32_t>& ids,
    TokenizerSpec* spec, const std::string& ctx) {
  if (p.is_null()) return absl::OkStatus();
  const std::string type = TypeOf(p);
  auto id_of = [&](const std::string& token) -> absl::StatusOr<int32_t> {
    auto it = ids.find(token);
    if (it == ids.end()) {
      return Bad(ctx, absl::StrCat("post-processor token '", token,
                                   "' is not in the vocabulary"));
    }
    return it->second;
  };
  if (type == "Sequence") {
    for (const json& e : p.value("processors", json::array())) {
      RETURN_IF_ERROR(ApplyPostProcessor(e, ids, spec, ctx));
    }
  } else if (type == "ByteLevel") {
    // Only adjusts offsets.
  } else if (type == "TemplateProcessing") {
    const json& single = p.value("single", json::array());
    std::vector<int32_t> before, after;
    bool seen_sequence = false;
    for (const json& item : single) {
      if (item.contains("Sequence")) {
        seen_sequence = true;
      } else if (item.contains("SpecialToken")) {
        const std::string name = item["SpecialToken"].value("id", "");
        std::vector<int32_t> tok_ids;
        const json& specials = p.value("special_tokens", json::object());
        if (specials.contains(name) && specials[name].contains("ids")) {
          for (const json& v : specials[name]["ids"]) {
            ASSIGN_OR_RETURN(int32_t id, IdValue(v, ctx, "special token id"));
            tok_ids.push_back(id);
          }
        } else {
          ASSIGN_OR_RETURN(int32_t id, id_of(name));
          tok_ids.push_back(id);
        }
        auto& dst = seen_sequence ? after : before;
        dst.insert(dst.end(), tok_ids.begin(), tok_ids.end());
      }
    }
    if (before.size() > 1 || after.size() > 1) {
      return Unsupported(ctx,
                         "TemplateProcessing adding more than one token "
                         "before or after the sequence");
    }
    if (!before.empty()) {
      spec->add_bos = true;
      spec->bos_id = before[0];
    }
    if (!after.empty()) {
      spec->add_eos = true;
      spec->eos_id = after[0];
    }
  } else if (type == "BertProcessing" || type == "RobertaProcessing") {
    const json& cls = p.value("cls", json::array());
    const json& sep = p.value("sep", json::array());
    if (cls.size() != 2 || sep.size() != 2) {
      return Bad(ctx, absl::StrCat(type, " without cls/sep pairs"));
    }
    spec->add_bos = spec->add_eos = true;
    ASSIGN_OR_RETURN(spec->bos_id, IdValue(cls[1], ctx, "cls id"));
    ASSIGN_OR_RETURN(spec->eos_id, IdValue(sep[1], ctx, "sep id"));
  } else {
    return Unsupported(
        ctx, absl::StrCat("unsupported post-processor type '", type, "'"));
  }
  return absl::OkStatus();
}

absl::Status ApplyDecoder(const json& d, TokenizerSpec* spec,
                          const std::string& ctx) {
  if (d.is_null()) return absl::OkStatus();
  const std::string type = TypeOf(d);
  if (type == "Sequence") {
    for (const json& e : d.value("decoders", json::array())) {
      RETURN_IF_ERROR(ApplyDecoder(e, spec, ctx));
    }
  } else if (type == "ByteLevel" || type == "ByteFallback" || type == "Fuse") {
    // Implied by the model kind.
  } else if (type == "Replace") {
    if (d.value("pattern", json::object()).value("String", "") != kMetaspace ||
        d.value("content", "") != " ") {
      return Unsupported(ctx, absl::StrCat("unsupported decoder ", d.dump()));
    }
  } else if (type == "Strip") {
    if (d.value("content", "") != " " || d.value("start", 0) > 1 ||
        d.value("stop", 0) != 0) {
      return Unsupported(ctx, absl::StrCat("unsupported decoder ", d.dump()));
    }
    spec->decode_strip_leading_space = d.value("start", 0) == 1;
  } else if (type == "Metaspace") {
    std::string scheme = d.value("prepend_scheme", "");
    if (scheme.empty())
      scheme = d.value("add_prefix_space", true) ? "always" : "never";
    spec->decode_strip_leading_space = scheme != "never";
  } else {
    return Unsupported(ctx,
                       absl::StrCat("unsupported decoder type '", type, "'"));
  }
  return absl::OkStatus();
}

// The merges Hugging Face generates for a vocabulary ranked by id, as
// (merged, left, right) in order; see MergeMode::kRankedById.
std::vector<std::tuple<int32_t, int32_t, int32_t>> ImpliedMerges(
    const absl::flat_hash_map<std::string, int32_t>& vocab) {
  std::vector<std::tuple<int32_t, int32_t, int32_t>> out;
  for (const auto& [tok, id] : vocab) {
    for (size_t k = 1; k < tok.size(); ++k) {
      auto l = vocab.find(absl::string_view(tok).substr(0, k));
      if (l == vocab.end()) continue;
      auto r = vocab.find(absl::string_view(tok).substr(k));
      if (r == vocab.end()) continue;
      out.emplace_back(id, l->second, r->second);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

absl::StatusOr<TokenizerSpec> SpecFromJsonUnchecked(const json& j,
                                                    const std::string& ctx) {
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object()) {
    return Bad(ctx, "not a tokenizer.json: no 'model' object");
  }
  const json& model = j["model"];
  std::string type = TypeOf(model);
  if (type.empty() && model.contains("merges")) type = "BPE";
  if (type != "BPE") {
    return Unsupported(ctx, absl::StrCat("unsupported tokenizer model type '",
                                         type, "' (only BPE is supported)"));
  }
  if (!model.contains("vocab") || !model["vocab"].is_object()) {
    return Bad(ctx, "model.vocab is missing or not an object");
  }
  if (!model.value("continuing_subword_prefix", json()).is_null() &&
      model.value("continuing_subword_prefix", "") != "") {
    return Unsupported(ctx, "BPE with continuing_subword_prefix");
  }
  if (!model.value("end_of_word_suffix", json()).is_null() &&
      model.value("end_of_word_suffix", "") != "") {
    return Unsupported(ctx, "BPE with end_of_word_suffix");
  }
  const json dropout = model.value("dropout", json());
  if (dropout.is_number() && dropout.get<double>() > 0) {
    return Unsupported(ctx, "BPE dropout (random merges at encode time)");
  }
  TokenizerSpec spec;
  const bool byte_level =
      HasType(j.value("pre_tokenizer", json()), "ByteLevel") ||
      HasType(j.value("decoder", json()), "ByteLevel");
  spec.kind =
      byte_level ? ModelKind::kByteLevelBpe : ModelKind::kSentencePieceBpe;
  const bool spm = !byte_level;
  spec.byte_fallback = model.value("byte_fallback", false);
  spec.fuse_unk = model.value("fuse_unk", false);
  spec.ignore_merges = model.value("ignore_merges", false);

  // Vocabulary: string -> id, dense from 0, plus added tokens.
  absl::flat_hash_map<std::string, int32_t> vocab_ids;  // original strings
  int64_t size = 0;
  for (const auto& [tok, v] : model["vocab"].items()) {
    ASSIGN_OR_RETURN(vocab_ids[tok],
                     IdValue(v, ctx, absl::StrCat("model.vocab['", tok, "']")));
    size = std::max<int64_t>(size, v.get<int64_t>() + 1);
  }
  const json& added = j.value("added_tokens", json::array());
  if (!added.is_array()) return Bad(ctx, "added_tokens is not an array");
  for (const json& a : added) {
    if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() ||
        !a.contains("content") || !a["content"].is_string()) {
      return Bad(ctx, absl::StrCat("added token without integer id and string "
                                   "content: ",
                                   a.dump()));
    }
    const int64_t id = a["id"].get<int64_t>();
    if (id < 0 || id > INT32_MAX) {
      return Bad(ctx, absl::StrCat("added token id ", id, " is out of range"));
    }
    size = std::max<int64_t>(size, id + 1);
  }
  // Dense ids cannot exceed the number of entries; checked before anything
  // is allocated from a (possibly hostile) id.
  if (size > static_cast<int64_t>(vocab_ids.size() + added.size())) {
    return Bad(ctx, absl::StrCat("token ids are not dense: largest id is ",
                                 size - 1, " but there are only ",
                                 vocab_ids.size() + added.size(), " tokens"));
  }
  std::vector<std::string> names(size);
  std::vector<bool> have(size, false);
  spec.tokens.resize(size);
  if (spm) {
    spec.scores.assign(size, 0.0f);
    spec.types.assign(size, PieceType::kNormal);
  }
  for (const auto& [tok, id] : vocab_ids) {
    if (have[id]) {
      return Bad(ctx,
                 absl::StrCat("duplicate token id ", id, " in model.vocab ('",
                              names[id], "' and '", tok, "')"));
    }
    have[id] = true;
    names[id] = tok;
    char byte;
    if (byte_level) {
      ASSIGN_OR_RETURN(spec.tokens[id], ByteLevelToBytes(tok, id, ctx));
    } else if (spec.byte_fallback && ParseBytePiece(tok, &byte)) {
      spec.tokens[id] = std::string(1, byte);
      spec.types[id] = PieceType::kByte;
    } else {
      spec.tokens[id] = tok;
    }
  }
  const std::string unk = model.value("unk_token", json()).is_string()
                              ? model["unk_token"].get<std::string>()
                              : "";
  if (!unk.empty()) {
    auto it = vocab_ids.find(unk);
    if (it == vocab_ids.end()) {
      return Bad(
          ctx, absl::StrCat("unk_token '", unk, "' is not in the vocabulary"));
    }
    spec.unk_id = it->second;
    if (spm) spec.types[spec.unk_id] = PieceType::kUnknown;
  }
  absl::flat_hash_map<std::string, int32_t> all_ids = vocab_ids;
  for (const json& a : added) {
    AddedToken t;
    t.id = a["id"].get<int32_t>();
    const std::string content = a["content"].get<std::string>();
    if (have[t.id] && names[t.id] != content) {
      return Bad(ctx, absl::StrCat("added token ", t.id, " '", content,
                                   "' conflicts with vocab token '",
                                   names[t.id], "'"));
    }
    have[t.id] = true;
    names[t.id] = content;
    spec.tokens[t.id] = content;
    t.special = a.value("special", false);
    t.lstrip = a.value("lstrip", false);
    t.rstrip = a.value("rstrip", false);
    t.single_word = a.value("single_word", false);
    t.normalized = a.value("normalized", false);
    if (spm && t.id != spec.unk_id) {
      spec.types[t.id] =
          t.special ? PieceType::kControl : PieceType::kUserDefined;
    }
    all_ids[content] = t.id;
    spec.added.push_back(t);
  }
  for (int64_t id = 0; id < size; ++id) {
    if (!have[id]) {
      return Bad(ctx, absl::StrCat("token id ", id,
                                   " has no token (ids must be dense from 0)"));
    }
  }

  // Merges: "left right" strings or [left, right] pairs.
  const json& merges = model.value("merges", json::array());
  if (!merges.is_array()) return Bad(ctx, "model.merges is not an array");
  std::vector<std::tuple<int32_t, int32_t, int32_t>> given;
  given.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const json& m = merges[i];
    std::string l, r;
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const size_t sp = s.find(' ', 1);
      if (sp == std::string::npos) {
        return Bad(ctx,
                   absl::StrCat("merge ", i, " '", s, "' is not 'left right'"));
      }
      l = s.substr(0, sp);
      r = s.substr(sp + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() &&
               m[1].is_string()) {
      l = m[0].get<std::string>();
      r = m[1].get<std::string>();
    } else {
      return Bad(ctx, absl::StrCat("merge ", i, " is malformed: ", m.dump()));
    }
    auto li = vocab_ids.find(l), ri = vocab_ids.find(r),
         mi = vocab_ids.find(l + r);
    if (li == vocab_ids.end() || ri == vocab_ids.end() ||
        mi == vocab_ids.end()) {
      return Bad(ctx, absl::StrCat("merge ", i, " ('", l, "' '", r,
                                   "') uses or produces a token not in the "
                                   "vocabulary"));
    }
    given.emplace_back(mi->second, li->second, ri->second);
  }
  // Store merges only when they are not implied by token ids.
  bool implied = false;
  if (byte_level) {
    absl::flat_hash_map<std::string, int32_t> model_vocab;
    std::vector<bool> is_added(size, false);
    for (const AddedToken& a : spec.added) is_added[a.id] = true;
    for (int64_t id = 0; id < size; ++id) {
      if (!is_added[id]) model_vocab.emplace(spec.tokens[id], int32_t(id));
    }
    implied = ImpliedMerges(model_vocab) == given;
  }
  if (implied) {
    spec.merge_mode = MergeMode::kRankedById;
  } else {
    spec.merge_mode = MergeMode::kExplicit;
    for (const auto& [m, l, r] : given) spec.merges.emplace_back(l, r);
  }

  RETURN_IF_ERROR(ApplyNormalizer(j.value("normalizer", json()), &spec, ctx));
  RETURN_IF_ERROR(
      ApplyPreTokenizer(j.value("pre_tokenizer", json()), &spec, ctx));
  RETURN_IF_ERROR(ApplyPostProcessor(j.value("post_processor", json()), all_ids,
                                     &spec, ctx));
  RETURN_IF_ERROR(ApplyDecoder(j.value("decoder", json()), &spec, ctx));
  if (spec.eos_id >= 0) spec.stop_ids.push_back(spec.eos_id);
  RETURN_IF_ERROR(ValidateTokenizerSpec(spec, ctx));
  return spec;
}

}  // namespace

absl::StatusOr<TokenizerSpec> SpecFromHfTokenizerJson(const json& j,
                                                      const std::string& ctx) {
  // nlohmann throws on a value of the wrong type (e.g. a string where an id
  // belongs); that is bad input, not a crash.
  try {
    return SpecFromJsonUnchecked(j, ctx);
  } catch (const json::exception& e) {
    return Bad(ctx,
               absl::StrCat("unexpected tokenizer.json structure: ", e.what()));
  }
}

}  // namespace llmpack::tokenizer
