#include "tokenizer/convert_tokenizer.h"

#include <algorithm>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "llmpack/checksum.h"
#include "llmpack/file_util.h"
#include "llmpack/json_file.h"
#include "llmpack/status_macros.h"
#include "sentencepiece_model.pb.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8_util.h"

namespace llmpack::tokenizer {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Non-throwing: an unreadable folder reads as "no such file".
bool IsFile(const fs::path& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec);
}

// A tiktoken file is text lines "<base64> <rank>"; a sentencepiece model is
// a protobuf (binary).
bool LooksLikeTiktoken(std::string_view bytes) {
  const size_t nl = bytes.find('\n');
  const std::string first(
      bytes.substr(0, nl == std::string_view::npos ? 64 : nl));
  std::vector<std::string> parts = absl::StrSplit(first, ' ');
  int64_t rank;
  return parts.size() == 2 && absl::SimpleAtoi(parts[1], &rank) &&
         Base64Decode(parts[0]).ok();
}

// Converts, checks that the result loads, and writes it.
absl::Status WriteChecked(const TokenizerSpec& spec, const fs::path& out_file) {
  auto loaded = Tokenizer::FromSpec(spec, out_file.string());
  if (!loaded.ok()) return loaded.status();
  return WriteTokenizerFile(spec, out_file);
}

// `token` from tokenizer_config.json: a string or {"content": ...}.
std::string TokenText(const json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_object() && j.contains("content") && j["content"].is_string()) {
    return j["content"].get<std::string>();
  }
  return "";
}

absl::StatusOr<TokenizerSpec> SpecFromTokenizerFile(const fs::path& file) {
  ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(file));
  const std::string ctx = file.string();
  if (file.extension() == ".json") {
    ASSIGN_OR_RETURN(json j, ParseJson(bytes, ctx));
    return SpecFromHfTokenizerJson(j, ctx);
  }
  if (LooksLikeTiktoken(bytes)) {
    return absl::FailedPreconditionError(absl::StrCat(
        ctx,
        ": is a tiktoken ranks file; convert it with "
        "ConvertTiktokenRanks (llmconvert --tiktoken), which takes the "
        "split pattern and special tokens"));
  }
  return SpecFromSentencePieceModel(bytes, ctx);
}

}  // namespace

absl::StatusOr<TokenizerSpec> SpecFromSentencePieceModel(
    std::string_view model_bytes, const std::string& ctx) {
  spm::ModelProto model;
  if (!model.ParseFromArray(model_bytes.data(),
                            static_cast<int>(model_bytes.size()))) {
    return absl::InvalidArgumentError(absl::StrCat(
        ctx,
        ": not a sentencepiece model (protobuf ModelProto did not parse)"));
  }
  const spm::TrainerSpec& trainer = model.trainer_spec();
  if (trainer.model_type() != spm::TrainerSpec::BPE) {
    return absl::UnimplementedError(
        absl::StrCat(ctx, ": unsupported sentencepiece model type ",
                     spm::TrainerSpec::ModelType_Name(trainer.model_type()),
                     " (only BPE is supported)"));
  }
  if (trainer.treat_whitespace_as_suffix()) {
    return absl::UnimplementedError(
        absl::StrCat(ctx, ": treat_whitespace_as_suffix is not supported"));
  }
  if (model.pieces_size() == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(ctx, ": model has no pieces"));
  }
  const spm::NormalizerSpec& norm = model.normalizer_spec();
  TokenizerSpec spec;
  spec.kind = ModelKind::kSentencePieceBpe;
  spec.merge_mode = MergeMode::kByScore;
  spec.spm_whole_text = true;
  if (norm.name().empty() || norm.name() == "identity") {
    spec.normalizer = "none";
  } else if (norm.name() == "nfkc" || norm.name() == "nmt_nfkc") {
    spec.normalizer = "nfkc";  // approximates the precompiled charsmap
  } else {
    return absl::UnimplementedError(absl::StrCat(
        ctx, ": unsupported sentencepiece normalizer '", norm.name(), "'"));
  }
  spec.space_to_metaspace = norm.escape_whitespaces();
  spec.prepend =
      norm.add_dummy_prefix() ? PrependScheme::kFirst : PrependScheme::kNever;
  spec.remove_extra_whitespaces = norm.remove_extra_whitespaces();
  spec.byte_fallback = trainer.byte_fallback();
  spec.decode_strip_leading_space = norm.add_dummy_prefix();
  spec.decode_spm_surfaces = true;
  const int n = model.pieces_size();
  for (int id = 0; id < n; ++id) {
    const auto& p = model.pieces(id);
    const auto type = static_cast<PieceType>(p.type());
    std::string bytes = p.piece();
    if (type == PieceType::kByte) {
      unsigned v;
      if (bytes.size() != 6 || bytes.compare(0, 3, "<0x") != 0 ||
          !absl::SimpleHexAtoi(bytes.substr(3, 2), &v)) {
        return absl::InvalidArgumentError(absl::StrCat(
            ctx, ": byte piece ", id, " '", bytes, "' is not <0xXX>"));
      }
      bytes = std::string(1, char(v));
    }
    spec.tokens.push_back(bytes);
    spec.scores.push_back(p.score());
    spec.types.push_back(type);
    if (type == PieceType::kControl || type == PieceType::kUserDefined) {
      AddedToken a;
      a.id = id;
      a.special = type == PieceType::kControl;
      a.normalized = !a.special;
      a.match_in_text = !a.special;  // sentencepiece never parses control text
      spec.added.push_back(a);
    }
  }
  auto valid = [n](int id) { return id >= 0 && id < n ? id : -1; };
  spec.unk_id = valid(trainer.unk_id());
  spec.bos_id = valid(trainer.bos_id());
  spec.eos_id = valid(trainer.eos_id());
  spec.add_bos = spec.bos_id >= 0;  // what Llama-style users expect
  if (spec.eos_id >= 0) spec.stop_ids.push_back(spec.eos_id);
  RETURN_IF_ERROR(ValidateTokenizerSpec(spec, ctx));
  return spec;
}

absl::StatusOr<TokenizerSpec> SpecFromTiktokenRanks(
    std::string_view ranks_text, const TiktokenOptions& options,
    const std::string& ctx) {
  TokenizerSpec spec;
  spec.kind = ModelKind::kByteLevelBpe;
  spec.merge_mode = MergeMode::kRankedById;
  spec.ignore_merges = true;  // tiktoken looks a whole piece up first
  if (!options.pattern.empty()) spec.split_regexes.push_back(options.pattern);
  std::vector<std::pair<int64_t, std::string>> ranked;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(
           absl::string_view(ranks_text.data(), ranks_text.size()), '\n')) {
    ++line_no;
    if (line.empty()) continue;
    std::vector<absl::string_view> parts = absl::StrSplit(line, ' ');
    int64_t rank;
    if (parts.size() != 2 || !absl::SimpleAtoi(parts[1], &rank) || rank < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          ctx, ":", line_no, ": expected '<base64> <rank>', found '",
          std::string(line), "'"));
    }
    auto bytes =
        Base64Decode(std::string_view(parts[0].data(), parts[0].size()));
    if (!bytes.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          ctx, ":", line_no, ": ", std::string(bytes.status().message())));
    }
    ranked.emplace_back(rank, *std::move(bytes));
  }
  std::sort(ranked.begin(), ranked.end());
  for (size_t i = 0; i < ranked.size(); ++i) {
    if (ranked[i].first != static_cast<int64_t>(i)) {
      return absl::InvalidArgumentError(absl::StrCat(
          ctx, ": ranks must be 0..N-1 without gaps or repeats; expected rank ",
          i, ", found ", ranked[i].first));
    }
    spec.tokens.push_back(std::move(ranked[i].second));
  }
  auto specials = options.special_tokens;
  std::sort(specials.begin(), specials.end(),
            [](const auto& a, const auto& b) { return a.second < b.second; });
  for (const auto& [text, id] : specials) {
    if (id != static_cast<int32_t>(spec.tokens.size())) {
      return absl::InvalidArgumentError(absl::StrCat(
          ctx, ": special token '", text, "' has id ", id, ", expected ",
          spec.tokens.size(), " (special ids must follow the ranks densely)"));
    }
    spec.tokens.push_back(text);
    AddedToken a;
    a.id = id;
    a.special = true;
    spec.added.push_back(a);
  }
  spec.bos_id = options.bos_id;
  spec.add_bos = options.add_bos;
  spec.stop_ids = options.stop_ids;
  RETURN_IF_ERROR(ValidateTokenizerSpec(spec, ctx));
  return spec;
}

absl::Status ConvertTiktokenRanks(const fs::path& ranks_file,
                                  const TiktokenOptions& options,
                                  const fs::path& out_file) {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(ranks_file));
  ASSIGN_OR_RETURN(TokenizerSpec spec,
                   SpecFromTiktokenRanks(text, options, ranks_file.string()));
  return WriteChecked(spec, out_file);
}

absl::Status ConvertTokenizerFile(const fs::path& tokenizer_file,
                                  const fs::path& out_file) {
  ASSIGN_OR_RETURN(TokenizerSpec spec, SpecFromTokenizerFile(tokenizer_file));
  return WriteChecked(spec, out_file);
}

namespace {

absl::Status ConvertTokenizerDirUnchecked(const fs::path& hf_dir,
                                          const fs::path& out_file,
                                          llmpack::ModelConfig* config) {
  const bool has_json = IsFile(hf_dir / "tokenizer.json");
  const bool has_model = IsFile(hf_dir / "tokenizer.model");
  if (!has_json && !has_model) {
    return absl::NotFoundError(absl::StrCat(
        hf_dir.string(), ": no tokenizer.json or tokenizer.model"));
  }
  ASSIGN_OR_RETURN(
      TokenizerSpec spec,
      SpecFromTokenizerFile(hf_dir /
                            (has_json ? "tokenizer.json" : "tokenizer.model")));
  auto id_of = [&spec](const std::string& text) -> int32_t {
    if (text.empty()) return -1;
    for (int32_t id = 0; id < static_cast<int32_t>(spec.tokens.size()); ++id) {
      if (spec.tokens[id] == text) return id;
    }
    return -1;
  };
  std::set<int32_t> stops(spec.stop_ids.begin(), spec.stop_ids.end());
  std::string chat_template;
  int32_t bos = spec.bos_id;
  const fs::path tc_path = hf_dir / "tokenizer_config.json";
  if (IsFile(tc_path)) {
    ASSIGN_OR_RETURN(json tc, ReadJsonFile(tc_path));
    if (bos < 0 && tc.contains("bos_token"))
      bos = id_of(TokenText(tc["bos_token"]));
    if (tc.contains("eos_token")) {
      const int32_t eos = id_of(TokenText(tc["eos_token"]));
      if (eos >= 0) stops.insert(eos);
    }
    // A tokenizer.json's post-processor is authoritative; a bare
    // sentencepiece model takes these flags from the config.
    if (!has_json) {
      if (tc.contains("add_bos_token") && tc["add_bos_token"].is_boolean()) {
        spec.add_bos = tc["add_bos_token"].get<bool>();
      }
      if (tc.contains("add_eos_token") && tc["add_eos_token"].is_boolean()) {
        spec.add_eos = tc["add_eos_token"].get<bool>();
      }
    }
    const json& t = tc.value("chat_template", json());
    if (t.is_string()) {
      chat_template = t.get<std::string>();
    } else if (t.is_array()) {  // [{"name": ..., "template": ...}]
      for (const json& e : t) {
        if (chat_template.empty() || e.value("name", "") == "default") {
          chat_template = e.value("template", "");
        }
      }
    }
  }
  if (IsFile(hf_dir / "chat_template.jinja")) {
    ASSIGN_OR_RETURN(chat_template,
                     ReadFileToString(hf_dir / "chat_template.jinja"));
  }
  const fs::path gc_path = hf_dir / "generation_config.json";
  if (IsFile(gc_path)) {
    ASSIGN_OR_RETURN(json gc, ReadJsonFile(gc_path));
    const json& eos = gc.value("eos_token_id", json());
    if (eos.is_number_integer()) stops.insert(eos.get<int32_t>());
    if (eos.is_array()) {
      for (const json& e : eos) {
        if (e.is_number_integer()) stops.insert(e.get<int32_t>());
      }
    }
    if (bos < 0 && gc.value("bos_token_id", json()).is_number_integer()) {
      bos = gc["bos_token_id"].get<int32_t>();
    }
  }
  spec.bos_id = bos;
  spec.stop_ids.assign(stops.begin(), stops.end());
  RETURN_IF_ERROR(WriteChecked(spec, out_file));
  if (config != nullptr) {
    config->chat_template = chat_template;
    if (bos >= 0) {
      config->bos_id = bos;
    } else {
      config->bos_id.reset();
    }
    // Keep the ids the model config already names (config.json's
    // eos_token_id); add the tokenizer's stop tokens to them.
    for (int32_t id : spec.stop_ids) {
      if (std::find(config->eos_ids.begin(), config->eos_ids.end(), id) ==
          config->eos_ids.end()) {
        config->eos_ids.push_back(id);
      }
    }
    config->add_bos = spec.add_bos;
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ConvertTokenizerDir(const fs::path& hf_dir,
                                 const fs::path& out_file,
                                 llmpack::ModelConfig* config) {
  // Config files with values of unexpected types make nlohmann throw.
  try {
    return ConvertTokenizerDirUnchecked(hf_dir, out_file, config);
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(hf_dir.string(),
                     ": unexpected tokenizer config structure: ", e.what()));
  }
}

absl::Status AddTokenizerToPackage(const fs::path& hf_dir,
                                   const fs::path& staging_dir,
                                   llmpack::Manifest* manifest) {
  const fs::path out = staging_dir / "tokenizer.txt";
  ModelConfig config = manifest->config;
  RETURN_IF_ERROR(ConvertTokenizerDir(hf_dir, out, &config));
  ASSIGN_OR_RETURN(uint64_t checksum, ChecksumFile(out));
  std::error_code ec;
  const uint64_t size = fs::file_size(out, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat(out.string(), ": cannot stat: ", ec.message()));
  }
  manifest->config = std::move(config);
  manifest->files.push_back({"tokenizer.txt", "tokenizer", size, checksum});
  return absl::OkStatus();
}

}  // namespace llmpack::tokenizer
