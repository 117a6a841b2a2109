#include "tokenizer/tokenizer_file.h"

#include <charconv>
#include <cstddef>
#include <cstdio>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "llmpack/file_util.h"
#include "llmpack/status_macros.h"

namespace llmpack::tokenizer {
namespace {

constexpr char kMagic[] = "llmpack-tokenizer 1";
constexpr char kAlphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// The header's names for enum values and flags. Serializer and parser both
// read these tables, so what one writes the other accepts.
template <typename E>
struct Named {
  E value;
  const char* name;
};
constexpr Named<ModelKind> kKindNames[] = {
    {ModelKind::kByteLevelBpe, "byte_level_bpe"},
    {ModelKind::kSentencePieceBpe, "sentencepiece_bpe"},
};
constexpr Named<MergeMode> kMergeModeNames[] = {
    {MergeMode::kRankedById, "ranked_by_id"},
    {MergeMode::kExplicit, "explicit"},
    {MergeMode::kByScore, "by_score"},
};
constexpr Named<PrependScheme> kPrependNames[] = {
    {PrependScheme::kNever, "never"},
    {PrependScheme::kFirst, "first"},
    {PrependScheme::kAlways, "always"},
};

template <typename E, size_t N>
const char* NameOf(const Named<E> (&names)[N], E value) {
  for (const Named<E>& n : names) {
    if (n.value == value) return n.name;
  }
  return "?";
}

// False when `name` is not in `names`.
template <typename E, size_t N>
bool ValueOf(const Named<E> (&names)[N], absl::string_view name, E* value) {
  for (const Named<E>& n : names) {
    if (name == n.name) {
      *value = n.value;
      return true;
    }
  }
  return false;
}

// Flags of an "added" line, in the order they are written; a flag is listed
// when its field holds `listed_when` (no_match is match_in_text == false).
struct AddedFlag {
  const char* name;
  bool AddedToken::*field;
  bool listed_when;
};
constexpr AddedFlag kAddedFlags[] = {
    {"special", &AddedToken::special, true},
    {"lstrip", &AddedToken::lstrip, true},
    {"rstrip", &AddedToken::rstrip, true},
    {"single_word", &AddedToken::single_word, true},
    {"normalized", &AddedToken::normalized, true},
    {"no_match", &AddedToken::match_in_text, false},
};

// Header keys that hold one 0/1 flag or one integer of the spec.
constexpr std::pair<const char*, bool TokenizerSpec::*> kFlagKeys[] = {
    {"ignore_merges", &TokenizerSpec::ignore_merges},
    {"space_to_metaspace", &TokenizerSpec::space_to_metaspace},
    {"prepend_only_if_absent", &TokenizerSpec::prepend_only_if_absent},
    {"remove_extra_whitespaces", &TokenizerSpec::remove_extra_whitespaces},
    {"spm_whole_text", &TokenizerSpec::spm_whole_text},
    {"byte_fallback", &TokenizerSpec::byte_fallback},
    {"fuse_unk", &TokenizerSpec::fuse_unk},
    {"add_bos", &TokenizerSpec::add_bos},
    {"add_eos", &TokenizerSpec::add_eos},
    {"decode_strip_leading_space", &TokenizerSpec::decode_strip_leading_space},
    {"decode_spm_surfaces", &TokenizerSpec::decode_spm_surfaces},
};
constexpr std::pair<const char*, int32_t TokenizerSpec::*> kIntKeys[] = {
    {"unk_id", &TokenizerSpec::unk_id},
    {"bos_id", &TokenizerSpec::bos_id},
    {"eos_id", &TokenizerSpec::eos_id},
};

// The field of `key`, or nullptr.
template <typename Field, size_t N>
Field FieldOf(const std::pair<const char*, Field> (&keys)[N],
              const std::string& key) {
  for (const auto& [name, field] : keys) {
    if (key == name) return field;
  }
  return nullptr;
}

constexpr char kTypeLetters[] = "?NUCDXB";  // indexed by PieceType value

std::string AddedFlags(const AddedToken& a) {
  std::vector<std::string> f;
  for (const AddedFlag& flag : kAddedFlags) {
    if (a.*flag.field == flag.listed_when) f.push_back(flag.name);
  }
  return f.empty() ? "-" : absl::StrJoin(f, ",");
}

std::string FormatFloat(float v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.9g", v);
  return buf;
}

absl::Status ParseBool(const std::string& v, bool* out,
                       const std::string& ctx) {
  if (v == "0" || v == "1") {
    *out = v == "1";
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat(ctx, ": expected 0 or 1, found '", v, "'"));
}

absl::Status ParseInt(const std::string& v, int32_t* out,
                      const std::string& ctx) {
  if (!absl::SimpleAtoi(v, out)) {
    return absl::InvalidArgumentError(
        absl::StrCat(ctx, ": expected an integer, found '", v, "'"));
  }
  return absl::OkStatus();
}

}  // namespace

std::string Base64Encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    uint32_t v = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8) |
                 uint8_t(bytes[i + 2]);
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i + 1 == bytes.size()) {
    uint32_t v = uint8_t(bytes[i]) << 16;
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == bytes.size()) {
    uint32_t v = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8);
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

absl::StatusOr<std::string> Base64Decode(std::string_view text) {
  static const auto* table = [] {
    auto* t = new std::array<int8_t, 256>();
    t->fill(-1);
    for (int i = 0; i < 64; ++i) (*t)[uint8_t(kAlphabet[i])] = int8_t(i);
    return t;
  }();
  if (text.size() % 4 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid base64 '", std::string(text), "': length ",
                     text.size(), " is not a multiple of 4"));
  }
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    int pad = 0;
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = text[i + k];
      int d;
      if (c == '=' && i + 4 == text.size() && k >= 2) {
        ++pad;
        d = 0;
      } else {
        d = (*table)[uint8_t(c)];
        if (d < 0 || pad > 0) {
          return absl::InvalidArgumentError(
              absl::StrCat("invalid base64 '", std::string(text),
                           "': bad character at offset ", i + k));
        }
      }
      v = (v << 6) | uint32_t(d);
    }
    out += char(v >> 16);
    if (pad < 2) out += char((v >> 8) & 0xff);
    if (pad < 1) out += char(v & 0xff);
  }
  return out;
}

absl::Status ValidateTokenizerSpec(const TokenizerSpec& spec,
                                   const std::string& context) {
  const int64_t n = static_cast<int64_t>(spec.tokens.size());
  if (n == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(context, ": empty vocabulary"));
  }
  const bool spm = spec.kind == ModelKind::kSentencePieceBpe;
  if (spm && (spec.scores.size() != spec.tokens.size() ||
              spec.types.size() != spec.tokens.size())) {
    return absl::InvalidArgumentError(absl::StrCat(
        context,
        ": SentencePiece vocabulary needs a score and type per token"));
  }
  // `optional`: -1 means "none".
  auto check_id = [&](int32_t id, const char* what,
                      bool optional = true) -> absl::Status {
    if (id < (optional ? -1 : 0) || id >= n) {
      return absl::InvalidArgumentError(absl::StrCat(
          context, ": ", what, " ", id, " is out of range [0, ", n, ")"));
    }
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(check_id(spec.bos_id, "bos_id"));
  RETURN_IF_ERROR(check_id(spec.eos_id, "eos_id"));
  RETURN_IF_ERROR(check_id(spec.unk_id, "unk_id"));
  for (int32_t id : spec.stop_ids) {
    RETURN_IF_ERROR(check_id(id, "stop id", /*optional=*/false));
  }
  if (spec.add_bos && spec.bos_id < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(context, ": add_bos is set but there is no bos_id"));
  }
  if (spec.add_eos && spec.eos_id < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(context, ": add_eos is set but there is no eos_id"));
  }
  std::vector<bool> is_added(n, false);
  for (const AddedToken& a : spec.added) {
    if (a.id < 0 || a.id >= n) {
      return absl::InvalidArgumentError(absl::StrCat(
          context, ": added token id ", a.id, " is out of range [0, ", n, ")"));
    }
    if (is_added[a.id]) {
      return absl::InvalidArgumentError(
          absl::StrCat(context, ": added token id ", a.id, " listed twice"));
    }
    if (spec.tokens[a.id].empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(context, ": added token ", a.id, " has empty content"));
    }
    is_added[a.id] = true;
  }
  // Two ids with the same bytes would make encoding ambiguous. Byte pieces
  // (SentencePiece byte fallback) live in their own namespace.
  absl::flat_hash_map<std::string_view, int32_t> seen;
  seen.reserve(n);
  for (int32_t id = 0; id < n; ++id) {
    if (spm && spec.types[id] == PieceType::kByte) {
      if (spec.tokens[id].size() != 1) {
        return absl::InvalidArgumentError(absl::StrCat(
            context, ": byte piece ", id, " must hold exactly one byte"));
      }
      continue;
    }
    if (spec.tokens[id].empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(context, ": token ", id, " is empty"));
    }
    auto [it, inserted] = seen.emplace(spec.tokens[id], id);
    if (!inserted) {
      return absl::InvalidArgumentError(
          absl::StrCat(context, ": duplicate token: ids ", it->second, " and ",
                       id, " both have the bytes '", spec.tokens[id], "'"));
    }
  }
  if (spec.merge_mode == MergeMode::kExplicit) {
    for (size_t i = 0; i < spec.merges.size(); ++i) {
      const auto [l, r] = spec.merges[i];
      if (l < 0 || l >= n || r < 0 || r >= n) {
        return absl::InvalidArgumentError(
            absl::StrCat(context, ": merge ", i, " (", l, " ", r,
                         ") refers to an id out of range [0, ", n, ")"));
      }
    }
  } else if (!spec.merges.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(context, ": merges listed but merge mode is ",
                     NameOf(kMergeModeNames, spec.merge_mode)));
  }
  if (spec.merge_mode == MergeMode::kByScore && !spm) {
    return absl::InvalidArgumentError(absl::StrCat(
        context, ": merge mode by_score needs a SentencePiece vocabulary"));
  }
  if (spec.normalizer != "none" && spec.normalizer != "nfc" &&
      spec.normalizer != "nfkc") {
    return absl::InvalidArgumentError(
        absl::StrCat(context, ": unknown normalizer '", spec.normalizer,
                     "' (expected none, nfc or nfkc)"));
  }
  return absl::OkStatus();
}

std::string SerializeTokenizerSpec(const TokenizerSpec& spec) {
  const bool spm = spec.kind == ModelKind::kSentencePieceBpe;
  std::string out;
  auto line = [&out](auto&&... parts) {
    absl::StrAppend(&out, parts..., "\n");
  };
  line(kMagic);
  line("kind ", NameOf(kKindNames, spec.kind));
  line("vocab_size ", spec.tokens.size());
  line("merge_mode ", NameOf(kMergeModeNames, spec.merge_mode));
  line("merge_count ", spec.merges.size());
  line("ignore_merges ", int(spec.ignore_merges));
  line("normalizer ", spec.normalizer);
  for (const std::string& r : spec.split_regexes) {
    line("split_regex ", Base64Encode(r));
  }
  line("space_to_metaspace ", int(spec.space_to_metaspace));
  line("prepend_metaspace ", NameOf(kPrependNames, spec.prepend));
  line("prepend_only_if_absent ", int(spec.prepend_only_if_absent));
  line("remove_extra_whitespaces ", int(spec.remove_extra_whitespaces));
  line("spm_whole_text ", int(spec.spm_whole_text));
  line("byte_fallback ", int(spec.byte_fallback));
  line("unk_id ", spec.unk_id);
  line("fuse_unk ", int(spec.fuse_unk));
  line("bos_id ", spec.bos_id);
  line("eos_id ", spec.eos_id);
  line("add_bos ", int(spec.add_bos));
  line("add_eos ", int(spec.add_eos));
  line("stop_ids ",
       spec.stop_ids.empty() ? "-" : absl::StrJoin(spec.stop_ids, ","));
  line("decode_strip_leading_space ", int(spec.decode_strip_leading_space));
  line("decode_spm_surfaces ", int(spec.decode_spm_surfaces));
  for (const AddedToken& a : spec.added)
    line("added ", a.id, " ", AddedFlags(a));
  line("tokens");
  for (size_t i = 0; i < spec.tokens.size(); ++i) {
    if (spm) {
      line(Base64Encode(spec.tokens[i]), " ", FormatFloat(spec.scores[i]), " ",
           std::string(1, kTypeLetters[static_cast<int>(spec.types[i])]));
    } else {
      line(Base64Encode(spec.tokens[i]));
    }
  }
  if (spec.merge_mode == MergeMode::kExplicit) {
    line("merges");
    for (const auto& [l, r] : spec.merges) line(l, " ", r);
  }
  line("end");
  return out;
}

absl::StatusOr<TokenizerSpec> ParseTokenizerSpec(std::string_view text,
                                                 const std::string& context) {
  TokenizerSpec spec;
  std::vector<absl::string_view> lines =
      absl::StrSplit(absl::string_view(text.data(), text.size()), '\n');
  // Tolerate CRLF line ends (a file that went through a Windows editor).
  for (absl::string_view& l : lines) {
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
  }
  size_t li = 0;
  auto where = [&](size_t i) { return absl::StrCat(context, ":", i + 1); };
  if (lines.empty() || lines[0] != kMagic) {
    return absl::InvalidArgumentError(absl::StrCat(
        context, ": not a tokenizer.txt file (expected first line '", kMagic,
        "')"));
  }
  int64_t vocab_size = -1, merge_count = 0;
  for (li = 1; li < lines.size() && lines[li] != "tokens"; ++li) {
    const std::string l(lines[li]);
    const size_t sp = l.find(' ');
    const std::string key = l.substr(0, sp);
    const std::string v = sp == std::string::npos ? "" : l.substr(sp + 1);
    const std::string ctx = absl::StrCat(where(li), " (", key, ")");
    if (bool TokenizerSpec::*flag = FieldOf(kFlagKeys, key)) {
      RETURN_IF_ERROR(ParseBool(v, &(spec.*flag), ctx));
    } else if (int32_t TokenizerSpec::*field = FieldOf(kIntKeys, key)) {
      RETURN_IF_ERROR(ParseInt(v, &(spec.*field), ctx));
    } else if (key == "kind") {
      if (!ValueOf(kKindNames, v, &spec.kind)) {
        return absl::InvalidArgumentError(
            absl::StrCat(ctx, ": unknown model kind '", v,
                         "' (expected byte_level_bpe or sentencepiece_bpe)"));
      }
    } else if (key == "vocab_size") {
      if (!absl::SimpleAtoi(v, &vocab_size) || vocab_size <= 0) {
        return absl::InvalidArgumentError(
            absl::StrCat(ctx, ": expected a positive count, found '", v, "'"));
      }
    } else if (key == "merge_mode") {
      if (!ValueOf(kMergeModeNames, v, &spec.merge_mode)) {
        return absl::InvalidArgumentError(
            absl::StrCat(ctx, ": unknown merge mode '", v, "'"));
      }
    } else if (key == "merge_count") {
      if (!absl::SimpleAtoi(v, &merge_count) || merge_count < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat(ctx, ": expected a count, found '", v, "'"));
      }
    } else if (key == "normalizer") {
      spec.normalizer = v;
    } else if (key == "split_regex") {
      auto r = Base64Decode(v);
      if (!r.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(ctx, ": ", std::string(r.status().message())));
      }
      spec.split_regexes.push_back(*std::move(r));
    } else if (key == "prepend_metaspace") {
      if (!ValueOf(kPrependNames, v, &spec.prepend)) {
        return absl::InvalidArgumentError(absl::StrCat(
            ctx, ": expected never, first or always, found '", v, "'"));
      }
    } else if (key == "stop_ids") {
      if (v != "-") {
        for (absl::string_view s : absl::StrSplit(v, ',')) {
          int32_t id;
          RETURN_IF_ERROR(ParseInt(std::string(s), &id, ctx));
          spec.stop_ids.push_back(id);
        }
      }
    } else if (key == "added") {
      std::vector<std::string> parts = absl::StrSplit(v, ' ');
      if (parts.size() != 2) {
        return absl::InvalidArgumentError(
            absl::StrCat(ctx, ": expected '<id> <flags>', found '", v, "'"));
      }
      AddedToken a;
      RETURN_IF_ERROR(ParseInt(parts[0], &a.id, ctx));
      if (parts[1] != "-") {
        for (absl::string_view f : absl::StrSplit(parts[1], ',')) {
          const AddedFlag* flag = nullptr;
          for (const AddedFlag& known : kAddedFlags) {
            if (f == known.name) flag = &known;
          }
          if (flag == nullptr) {
            return absl::InvalidArgumentError(absl::StrCat(
                ctx, ": unknown added-token flag '", std::string(f), "'"));
          }
          a.*flag->field = flag->listed_when;
        }
      }
      spec.added.push_back(a);
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(ctx, ": unknown header key '", key, "'"));
    }
  }
  if (li >= lines.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(context, ": missing 'tokens' line after the header"));
  }
  if (vocab_size <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(context, ": header has no vocab_size"));
  }
  const bool spm = spec.kind == ModelKind::kSentencePieceBpe;
  ++li;
  if (lines.size() < li + vocab_size) {
    return absl::InvalidArgumentError(
        absl::StrCat(context, ": truncated: header promises ", vocab_size,
                     " tokens, found ", lines.size() - li));
  }
  spec.tokens.reserve(vocab_size);
  for (int64_t id = 0; id < vocab_size; ++id, ++li) {
    absl::string_view l = lines[li];
    absl::string_view b64 = l;
    if (spm) {
      std::vector<absl::string_view> parts = absl::StrSplit(l, ' ');
      float score;
      if (parts.size() != 3 || !absl::SimpleAtof(parts[1], &score) ||
          parts[2].size() != 1) {
        return absl::InvalidArgumentError(
            absl::StrCat(where(li), ": token ", id,
                         ": expected '<base64> <score> <type>', found '",
                         std::string(l), "'"));
      }
      const char* p =
          std::char_traits<char>::find(kTypeLetters + 1, 6, parts[2][0]);
      if (p == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat(where(li), ": token ", id, ": unknown piece type '",
                         std::string(parts[2]), "' (expected one of NUCDXB)"));
      }
      spec.scores.push_back(score);
      spec.types.push_back(static_cast<PieceType>(p - kTypeLetters));
      b64 = parts[0];
    }
    auto bytes = Base64Decode(std::string_view(b64.data(), b64.size()));
    if (!bytes.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where(li), ": token ", id, ": ",
                       std::string(bytes.status().message())));
    }
    spec.tokens.push_back(*std::move(bytes));
  }
  if (spec.merge_mode == MergeMode::kExplicit) {
    if (li >= lines.size() || lines[li] != "merges") {
      return absl::InvalidArgumentError(absl::StrCat(
          where(li), ": expected 'merges' after ", vocab_size, " tokens"));
    }
    ++li;
    if (lines.size() < li + merge_count) {
      return absl::InvalidArgumentError(absl::StrCat(
          context, ": truncated: header promises ", merge_count, " merges"));
    }
    spec.merges.reserve(merge_count);
    for (int64_t m = 0; m < merge_count; ++m, ++li) {
      std::vector<absl::string_view> parts = absl::StrSplit(lines[li], ' ');
      int32_t l, r;
      if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &l) ||
          !absl::SimpleAtoi(parts[1], &r)) {
        return absl::InvalidArgumentError(
            absl::StrCat(where(li), ": merge ", m,
                         ": expected '<left id> <right id>', found '",
                         std::string(lines[li]), "'"));
      }
      spec.merges.emplace_back(l, r);
    }
  }
  if (li >= lines.size() || lines[li] != "end") {
    return absl::InvalidArgumentError(absl::StrCat(
        where(li),
        ": expected 'end' (token count does not match vocab_size?)"));
  }
  RETURN_IF_ERROR(ValidateTokenizerSpec(spec, context));
  return spec;
}

absl::Status WriteTokenizerFile(const TokenizerSpec& spec,
                                const std::filesystem::path& path) {
  RETURN_IF_ERROR(ValidateTokenizerSpec(spec, path.string()));
  return WriteStringToFile(path, SerializeTokenizerSpec(spec));
}

absl::StatusOr<TokenizerSpec> ReadTokenizerFile(
    const std::filesystem::path& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return ParseTokenizerSpec(text, path.string());
}

}  // namespace llmpack::tokenizer
