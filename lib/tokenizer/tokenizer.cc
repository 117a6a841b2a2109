#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "llmpack/status_macros.h"
#include "tokenizer/utf8_util.h"

namespace llmpack::tokenizer {
namespace {

// Words longer than this are not cached (they are rarely repeated).
constexpr size_t kMaxCachedWord = 64;

// Code point of the character that ends right before s[i] (or -1).
int32_t CodePointBefore(std::string_view s, size_t i, size_t* len) {
  size_t j = i;
  while (j > 0 && i - j < 4) {
    --j;
    if ((uint8_t(s[j]) & 0xC0) != 0x80) break;
  }
  const size_t n = ValidCharLength(s, j);
  if (n == 0 || j + n != i) {
    *len = 1;
    return -1;
  }
  *len = n;
  return DecodeCodePoint(s, j, n);
}

int32_t CodePointAt(std::string_view s, size_t i, size_t* len) {
  const size_t n = ValidCharLength(s, i);
  *len = n == 0 ? 1 : n;
  return n == 0 ? -1 : DecodeCodePoint(s, i, n);
}

std::string ReplaceAll(std::string_view s, std::string_view from,
                       std::string_view to) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (true) {
    const size_t p = s.find(from, i);
    if (p == std::string_view::npos) break;
    out.append(s.data() + i, p - i);
    out.append(to);
    i = p + from.size();
  }
  out.append(s.data() + i, s.size() - i);
  return out;
}

// sentencepiece's normalizer for the identity/NFKC rules: optional extra
// whitespace removal, dummy prefix, and ' ' -> U+2581.
std::string SpmNormalize(std::string_view text, const TokenizerSpec& spec) {
  std::string s = Normalize(text, spec.normalizer);
  if (spec.remove_extra_whitespaces) {
    std::string t;
    bool pending_space = false;
    for (char c : s) {
      if (c == ' ') {
        pending_space = !t.empty();
        continue;
      }
      if (pending_space) t += ' ';
      pending_space = false;
      t += c;
    }
    s = std::move(t);
  }
  if (s.empty()) return s;
  if (spec.prepend != PrependScheme::kNever) s.insert(0, " ");
  return spec.space_to_metaspace ? ReplaceAll(s, " ", kMetaspace) : s;
}

}  // namespace

// Scratch reused across the segments and words of one Encode call.
struct Tokenizer::EncodeState {
  absl::flat_hash_map<std::string, std::pair<uint32_t, uint32_t>> cache;
  std::vector<int32_t> cached_ids;
  std::vector<Symbol> symbols;
  std::vector<Piece> pieces;
  std::vector<Piece> next_pieces;
  absl::Status status;  // first error (a regex limit); stops the encoding
};

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Load(
    const std::filesystem::path& tokenizer_txt) {
  ASSIGN_OR_RETURN(TokenizerSpec spec, ReadTokenizerFile(tokenizer_txt));
  return FromSpec(std::move(spec), tokenizer_txt.string());
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromSpec(
    TokenizerSpec spec, const std::string& context) {
  RETURN_IF_ERROR(ValidateTokenizerSpec(spec, context));
  std::unique_ptr<Tokenizer> t(new Tokenizer());
  t->spec_ = std::move(spec);
  RETURN_IF_ERROR(t->Init(context));
  return t;
}

absl::Status Tokenizer::Init(const std::string& context) {
  spm_ = spec_.kind == ModelKind::kSentencePieceBpe;
  const int32_t n = vocab_size();
  byte_ids_.fill(-1);
  added_index_.assign(n, -1);
  for (size_t i = 0; i < spec_.added.size(); ++i) {
    added_index_[spec_.added[i].id] = static_cast<int32_t>(i);
  }
  vocab_.reserve(n);
  decode_bytes_.resize(n);
  is_byte_piece_.assign(n, false);
  for (int32_t id = 0; id < n; ++id) {
    const std::string& tok = spec_.tokens[id];
    if (spm_) {
      switch (spec_.types[id]) {
        case PieceType::kByte:
          byte_ids_[uint8_t(tok[0])] = id;
          is_byte_piece_[id] = true;
          decode_bytes_[id] = tok;
          break;
        case PieceType::kControl:
          decode_bytes_[id] = spec_.decode_spm_surfaces ? "" : tok;
          break;
        case PieceType::kUnknown:
          decode_bytes_[id] =
              spec_.decode_spm_surfaces ? " \xE2\x81\x87 " : tok;
          break;
        default:
          if (added_index_[id] < 0 ||
              spec_.types[id] == PieceType::kUserDefined) {
            vocab_.emplace(tok, id);
          }
          decode_bytes_[id] = ReplaceAll(tok, kMetaspace, " ");
      }
    } else {
      decode_bytes_[id] = tok;
      if (added_index_[id] >= 0) continue;
      vocab_.emplace(tok, id);
      if (tok.size() == 1) byte_ids_[uint8_t(tok[0])] = id;
    }
  }
  for (const AddedToken& a : spec_.added) {
    if (!a.match_in_text) continue;
    added_by_first_byte_[uint8_t(spec_.tokens[a.id][0])].push_back(a.id);
  }
  for (auto& list : added_by_first_byte_) {
    std::stable_sort(list.begin(), list.end(), [this](int32_t a, int32_t b) {
      return spec_.tokens[a].size() > spec_.tokens[b].size();
    });
  }
  for (const std::string& pattern : spec_.split_regexes) {
    auto r = SplitRegex::Compile(pattern);
    if (!r.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(context, ": ", std::string(r.status().message())));
    }
    regexes_.push_back(*std::move(r));
  }
  return BuildMerges(context);
}

absl::Status Tokenizer::BuildMerges(const std::string& context) {
  auto find = [this](std::string_view s) -> int32_t {
    auto it = vocab_.find(absl::string_view(s.data(), s.size()));
    return it == vocab_.end() ? -1 : it->second;
  };
  switch (spec_.merge_mode) {
    case MergeMode::kExplicit: {
      merges_.Reserve(spec_.merges.size());
      std::string joined;
      for (size_t i = 0; i < spec_.merges.size(); ++i) {
        const auto [l, r] = spec_.merges[i];
        joined = spec_.tokens[l] + spec_.tokens[r];
        const int32_t merged = find(joined);
        if (merged < 0) {
          return absl::InvalidArgumentError(
              absl::StrCat(context, ": merge ", i, " (", l, " ", r,
                           ") produces bytes that are not a token"));
        }
        merges_.Add(l, r, static_cast<int32_t>(i), merged);
      }
      break;
    }
    case MergeMode::kRankedById:
    case MergeMode::kByScore: {
      // (priority key, left, right, merged) for every split of every token
      // into two tokens.
      std::vector<std::tuple<float, int32_t, int32_t, int32_t>> all;
      for (const auto& [tok, id] : vocab_) {
        if (spm_ && spec_.types[id] == PieceType::kUnused) continue;
        for (size_t k = 1; k < tok.size(); ++k) {
          const int32_t l = find(std::string_view(tok).substr(0, k));
          if (l < 0) continue;
          const int32_t r = find(std::string_view(tok).substr(k));
          if (r < 0) continue;
          const float key = spec_.merge_mode == MergeMode::kByScore
                                ? -spec_.scores[id]
                                : static_cast<float>(id);
          all.emplace_back(key, l, r, id);
        }
      }
      if (spec_.merge_mode == MergeMode::kRankedById) {
        // Hugging Face's tiktoken conversion orders merges by
        // (merged id, left id, right id); ranks are the positions.
        std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
          return std::tie(std::get<3>(a), std::get<1>(a), std::get<2>(a)) <
                 std::tie(std::get<3>(b), std::get<1>(b), std::get<2>(b));
        });
        merges_.Reserve(all.size());
        for (size_t i = 0; i < all.size(); ++i) {
          merges_.Add(std::get<1>(all[i]), std::get<2>(all[i]),
                      static_cast<int32_t>(i), std::get<3>(all[i]));
        }
      } else {
        // sentencepiece: higher score first; equal scores share a rank so
        // the leftmost pair wins.
        std::sort(all.begin(), all.end());
        merges_.Reserve(all.size());
        int32_t rank = -1;
        for (size_t i = 0; i < all.size(); ++i) {
          if (i == 0 || std::get<0>(all[i]) != std::get<0>(all[i - 1])) ++rank;
          merges_.Add(std::get<1>(all[i]), std::get<2>(all[i]), rank,
                      std::get<3>(all[i]));
        }
      }
      break;
    }
  }
  return absl::OkStatus();
}

std::optional<int32_t> Tokenizer::bos_id() const {
  if (spec_.bos_id < 0) return std::nullopt;
  return spec_.bos_id;
}

std::optional<int32_t> Tokenizer::TokenToId(std::string_view bytes) const {
  auto it = vocab_.find(absl::string_view(bytes.data(), bytes.size()));
  if (it != vocab_.end()) return it->second;
  for (const AddedToken& a : spec_.added) {
    if (spec_.tokens[a.id] == bytes) return a.id;
  }
  return std::nullopt;
}

std::optional<Tokenizer::AddedMatch> Tokenizer::FindAdded(
    std::string_view text, size_t from, bool parse_special) const {
  for (size_t i = from; i < text.size(); ++i) {
    const auto& candidates = added_by_first_byte_[uint8_t(text[i])];
    for (int32_t id : candidates) {
      const AddedToken& a = spec_.added[added_index_[id]];
      if (a.special && !parse_special) continue;
      const std::string& content = spec_.tokens[id];
      if (text.compare(i, content.size(), content) != 0) continue;
      size_t start = i, end = i + content.size();
      if (a.single_word) {
        size_t len;
        const int32_t before =
            start > 0 ? CodePointBefore(text, start, &len) : -1;
        const int32_t after =
            end < text.size() ? CodePointAt(text, end, &len) : -1;
        if ((before >= 0 && IsWordChar(before)) ||
            (after >= 0 && IsWordChar(after))) {
          continue;
        }
      }
      if (a.lstrip) {
        size_t len;
        while (start > from) {
          const int32_t cp = CodePointBefore(text, start, &len);
          if (cp < 0 || !IsUnicodeWhitespace(cp)) break;
          start -= len;
        }
      }
      if (a.rstrip) {
        size_t len;
        while (end < text.size()) {
          const int32_t cp = CodePointAt(text, end, &len);
          if (cp < 0 || !IsUnicodeWhitespace(cp)) break;
          end += len;
        }
      }
      return AddedMatch{id, start, end};
    }
  }
  return std::nullopt;
}

absl::StatusOr<std::vector<int32_t>> Tokenizer::Encode(std::string_view text,
                                                       bool add_special) const {
  EncodeOptions options;
  options.add_special = add_special;
  return Encode(text, options);
}

absl::StatusOr<std::vector<int32_t>> Tokenizer::Encode(
    std::string_view text, const EncodeOptions& options) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  if (options.add_special && spec_.add_bos) out.push_back(spec_.bos_id);
  EncodeState state;
  std::string spm_text;
  if (spec_.spm_whole_text) {
    // sentencepiece normalizes the whole input first; its user-defined
    // pieces are then matched in the normalized text.
    spm_text = SpmNormalize(text, spec_);
    text = spm_text;
  }
  size_t pos = 0;
  bool first_segment = true;
  while (pos < text.size()) {
    const std::optional<AddedMatch> m =
        FindAdded(text, pos, options.parse_special);
    const size_t seg_end = m ? m->start : text.size();
    if (seg_end > pos) {
      if (spec_.spm_whole_text) {
        EncodePieces(text.substr(pos, seg_end - pos), &state, &out);
      } else {
        EncodeSegment(text.substr(pos, seg_end - pos), first_segment, &state,
                      &out);
      }
      first_segment = false;
      if (!state.status.ok()) return state.status;
    }
    if (!m) break;
    out.push_back(m->id);
    pos = m->end;
  }
  if (options.add_special && spec_.add_eos) out.push_back(spec_.eos_id);
  return out;
}

void Tokenizer::EncodeSegment(std::string_view text, bool first,
                              EncodeState* state,
                              std::vector<int32_t>* out) const {
  if (spec_.normalizer == "none" && !spec_.space_to_metaspace &&
      spec_.prepend == PrependScheme::kNever) {
    EncodePieces(text, state, out);  // nothing to rewrite: no copy
    return;
  }
  std::string s = Normalize(text, spec_.normalizer);
  if (spec_.space_to_metaspace) s = ReplaceAll(s, " ", kMetaspace);
  if (!s.empty() && (spec_.prepend == PrependScheme::kAlways ||
                     (spec_.prepend == PrependScheme::kFirst && first))) {
    const std::string_view prefix = spm_ ? kMetaspace : " ";
    if (!spec_.prepend_only_if_absent ||
        s.compare(0, prefix.size(), prefix) != 0) {
      s.insert(0, prefix);
    }
  }
  EncodePieces(s, state, out);
}

void Tokenizer::EncodePieces(std::string_view text, EncodeState* state,
                             std::vector<int32_t>* out) const {
  std::vector<Piece>& pieces = state->pieces;
  pieces.clear();
  pieces.push_back({0, text.size()});
  for (const auto& regex : regexes_) {
    state->next_pieces.clear();
    for (const Piece& p : pieces) {
      state->status = regex->Split(text, p, &state->next_pieces);
      if (!state->status.ok()) return;
    }
    pieces.swap(state->next_pieces);
  }
  for (const Piece& p : pieces) {
    EncodeWord(text.substr(p.start, p.len), state, out);
  }
}

void Tokenizer::EncodeWord(std::string_view word, EncodeState* state,
                           std::vector<int32_t>* out) const {
  if (word.empty()) return;
  const absl::string_view key(word.data(), word.size());
  if (!spm_ && word.size() == 1 && byte_ids_[uint8_t(word[0])] >= 0) {
    out->push_back(byte_ids_[uint8_t(word[0])]);
    return;
  }
  // The per-call cache is small and hot, so it is asked before the
  // vocabulary; both whole-word hits and merge results are cached.
  const bool cacheable = !spm_ && word.size() <= kMaxCachedWord;
  if (cacheable) {
    auto it = state->cache.find(key);
    if (it != state->cache.end()) {
      const auto [offset, len] = it->second;
      out->insert(out->end(), state->cached_ids.begin() + offset,
                  state->cached_ids.begin() + offset + len);
      return;
    }
  }
  const size_t out_start = out->size();
  if (spec_.ignore_merges || word.size() == 1) {
    auto it = vocab_.find(key);
    if (it != vocab_.end()) out->push_back(it->second);
  }
  if (out->size() == out_start) MergeWord(word, state, out);
  if (cacheable) {
    const uint32_t offset = static_cast<uint32_t>(state->cached_ids.size());
    const uint32_t len = static_cast<uint32_t>(out->size() - out_start);
    state->cached_ids.insert(state->cached_ids.end(), out->begin() + out_start,
                             out->end());
    state->cache.emplace(std::string(word), std::make_pair(offset, len));
  }
}

void Tokenizer::MergeWord(std::string_view word, EncodeState* state,
                          std::vector<int32_t>* out) const {
  const absl::string_view key(word.data(), word.size());
  std::vector<Symbol>& symbols = state->symbols;
  symbols.clear();
  if (spm_) {
    for (size_t i = 0; i < word.size();) {
      const size_t len = std::min(CharStep(word, i), word.size() - i);
      auto it = vocab_.find(key.substr(i, len));
      symbols.push_back(
          {it == vocab_.end() ? -1 : it->second, uint32_t(i), uint32_t(len)});
      i += len;
    }
  } else {
    for (size_t i = 0; i < word.size(); ++i) {
      const int32_t id = byte_ids_[uint8_t(word[i])];
      if (id >= 0) symbols.push_back({id, uint32_t(i), 1});
    }
  }
  ApplyMerges(merges_, &symbols);
  bool last_was_unk = false;
  for (const Symbol& s : symbols) {
    if (s.id >= 0) {
      out->push_back(s.id);
      last_was_unk = false;
      continue;
    }
    bool bytes_ok = spec_.byte_fallback;
    for (uint32_t k = 0; bytes_ok && k < s.len; ++k) {
      bytes_ok = byte_ids_[uint8_t(word[s.start + k])] >= 0;
    }
    if (bytes_ok) {
      for (uint32_t k = 0; k < s.len; ++k) {
        out->push_back(byte_ids_[uint8_t(word[s.start + k])]);
      }
      last_was_unk = false;
    } else if (spec_.unk_id >= 0 && !(spec_.fuse_unk && last_was_unk)) {
      out->push_back(spec_.unk_id);
      last_was_unk = true;
    }
  }
}

absl::StatusOr<std::string> Tokenizer::Decode(
    absl::Span<const int32_t> ids) const {
  return Decode(ids, /*skip_special=*/false);
}

absl::StatusOr<std::string> Tokenizer::Decode(absl::Span<const int32_t> ids,
                                              bool skip_special) const {
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab_size()) {
      return absl::OutOfRangeError(
          absl::StrCat("token id ", ids[i], " at position ", i,
                       " is out of range [0, ", vocab_size(), ")"));
    }
  }
  return DecodeUnchecked(ids, spec_.decode_strip_leading_space, skip_special);
}

std::string Tokenizer::DecodeUnchecked(absl::Span<const int32_t> ids,
                                       bool strip_leading_space,
                                       bool skip_special) const {
  std::string text;
  if (!spm_) {
    std::string bytes;
    for (int32_t id : ids) {
      if (!(skip_special && IsSpecial(id))) bytes += decode_bytes_[id];
    }
    text = Utf8Lossy(bytes);
  } else {
    // Byte pieces are collected into runs and repaired per run: Hugging
    // Face's ByteFallback replaces an invalid run with one U+FFFD per byte,
    // sentencepiece replaces only the offending bytes.
    std::string run;
    size_t run_tokens = 0;
    auto flush = [&] {
      if (run_tokens == 0) return;
      if (spec_.decode_spm_surfaces) {
        text += Utf8ReplacePerByte(run);
      } else if (IsValidUtf8(run)) {
        text += run;
      } else {
        for (size_t k = 0; k < run_tokens; ++k) text += kReplacementChar;
      }
      run.clear();
      run_tokens = 0;
    };
    for (int32_t id : ids) {
      if (skip_special && IsSpecial(id)) continue;
      if (is_byte_piece_[id]) {
        run += decode_bytes_[id];
        ++run_tokens;
      } else {
        flush();
        text += decode_bytes_[id];
      }
    }
    flush();
  }
  if (strip_leading_space && !text.empty() && text[0] == ' ') text.erase(0, 1);
  return text;
}

StreamingDecoder::StreamingDecoder(const Tokenizer& tokenizer,
                                   bool skip_special)
    : tokenizer_(tokenizer), skip_special_(skip_special) {}

std::string StreamingDecoder::Push(int32_t id) {
  if (id < 0 || id >= tokenizer_.vocab_size()) {
    return Flush() + kReplacementChar;
  }
  pending_.push_back(id);
  std::string bytes;
  for (int32_t p : pending_) bytes += tokenizer_.decode_bytes_[p];
  // A character is at most 4 bytes, so a few held-back tokens always
  // suffice; the bound keeps a broken stream from accumulating.
  if (IncompleteTailLength(bytes) > 0 && pending_.size() < 8) return "";
  return Flush();
}

std::string StreamingDecoder::Flush() {
  if (pending_.empty()) return "";
  std::string text = tokenizer_.DecodeUnchecked(pending_, false, skip_special_);
  pending_.clear();
  if (text.empty()) return text;
  // Decode strips one leading space of the whole output, so only the first
  // non-empty piece of the stream is stripped.
  if (at_start_ && tokenizer_.spec_.decode_strip_leading_space &&
      text[0] == ' ') {
    text.erase(0, 1);
  }
  at_start_ = false;
  return text;
}

}  // namespace llmpack::tokenizer
