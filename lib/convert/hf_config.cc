#include "convert/hf_config.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "llmpack/json_file.h"
#include "llmpack/status_macros.h"

namespace llmpack::convert {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct ArchitectureInfo {
  const char* architecture;
  const char* family;
  bool qkv_bias;
  bool qk_norm;
};

constexpr ArchitectureInfo kArchitectures[] = {
    {"LlamaForCausalLM", "llama", false, false},
    {"MistralForCausalLM", "mistral", false, false},
    {"Qwen2ForCausalLM", "qwen2", true, false},
    {"Qwen3ForCausalLM", "qwen3", false, true},
};

// Reads an int that may be absent or null.
std::optional<int64_t> OptionalInt(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  return JsonInt(*it);
}

// eos_token_id may be an int or a list of ints.
std::vector<int64_t> IdList(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return {};
  if (!it->is_array()) return {JsonInt(*it)};
  std::vector<int64_t> ids;
  for (const json& id : *it) ids.push_back(JsonInt(id));
  return ids;
}

absl::Status ParseRope(const json& config, const std::string& context,
                       RopeConfig* rope) {
  // transformers 5: everything under rope_parameters. transformers 4:
  // rope_theta at top level and an optional rope_scaling object.
  json params = json::object();
  if (auto it = config.find("rope_parameters");
      it != config.end() && it->is_object()) {
    params = *it;
  } else if (auto it = config.find("rope_scaling");
             it != config.end() && it->is_object()) {
    params = *it;
  }
  if (params.contains("rope_theta")) {
    rope->theta = params["rope_theta"].get<double>();
  } else if (config.contains("rope_theta")) {
    rope->theta = config["rope_theta"].get<double>();
  }
  std::string type = params.value("rope_type", params.value("type", "default"));
  if (type == "default") {
    rope->type = "default";
    return absl::OkStatus();
  }
  if (type == "llama3") {
    rope->type = "llama3";
    rope->factor = params.at("factor").get<double>();
    rope->low_freq_factor = params.at("low_freq_factor").get<double>();
    rope->high_freq_factor = params.at("high_freq_factor").get<double>();
    rope->original_max_positions =
        JsonInt(params.at("original_max_position_embeddings"));
    return absl::OkStatus();
  }
  return absl::UnimplementedError(
      absl::StrCat(context, ": RoPE type '", type,
                   "' is not supported (supported: default, llama3)"));
}

}  // namespace

const std::vector<std::string>& SupportedArchitectures() {
  static const auto* names = [] {
    auto* v = new std::vector<std::string>;
    for (const auto& a : kArchitectures) v->push_back(a.architecture);
    return v;
  }();
  return *names;
}

std::string DeclaredDType(const json& config) {
  for (const char* key : {"dtype", "torch_dtype"}) {
    auto it = config.find(key);
    if (it != config.end() && it->is_string()) return it->get<std::string>();
  }
  return "";
}

absl::StatusOr<ModelConfig> ParseHuggingFaceConfig(const json& j,
                                                   const std::string& context) {
  if (!j.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(context, ": config is not a JSON object"));
  }
  ModelConfig c;
  try {
    const json& archs = j.at("architectures");
    const std::string arch =
        archs.is_array() && !archs.empty() ? archs[0].get<std::string>() : "";
    const ArchitectureInfo* info = nullptr;
    for (const auto& a : kArchitectures) {
      if (arch == a.architecture) info = &a;
    }
    if (info == nullptr) {
      return absl::UnimplementedError(absl::StrCat(
          context, ": unsupported architecture '", arch, "' (supported: ",
          absl::StrJoin(SupportedArchitectures(), ", "), ")"));
    }
    c.architecture = arch;
    c.family = info->family;
    c.qkv_bias = info->qkv_bias;
    c.qk_norm = info->qk_norm;
    if (c.family == "llama" || c.family == "mistral") {
      if (j.value("attention_bias", false) || j.value("mlp_bias", false)) {
        return absl::UnimplementedError(absl::StrCat(
            context, ": attention_bias/mlp_bias are not supported for ", arch));
      }
    }
    const std::string act = j.value("hidden_act", "silu");
    if (act != "silu") {
      return absl::UnimplementedError(
          absl::StrCat(context, ": hidden_act '", act,
                       "' is not supported (expected silu)"));
    }
    c.hidden_size = JsonInt(j.at("hidden_size"));
    c.num_layers = JsonInt(j.at("num_hidden_layers"));
    c.num_heads = JsonInt(j.at("num_attention_heads"));
    c.num_kv_heads =
        OptionalInt(j, "num_key_value_heads").value_or(c.num_heads);
    c.head_dim =
        OptionalInt(j, "head_dim")
            .value_or(c.num_heads > 0 ? c.hidden_size / c.num_heads : 0);
    c.ffn_size = JsonInt(j.at("intermediate_size"));
    c.vocab_size = JsonInt(j.at("vocab_size"));
    c.norm_eps = j.value("rms_norm_eps", 1e-6);
    c.max_positions = OptionalInt(j, "max_position_embeddings").value_or(0);
    c.tie_word_embeddings = j.value("tie_word_embeddings", false);
    c.bos_id = OptionalInt(j, "bos_token_id");
    c.eos_ids = IdList(j, "eos_token_id");
    RETURN_IF_ERROR(ParseRope(j, context, &c.rope));
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(context, ": missing or malformed field: ", e.what()));
  }
  if (absl::Status s = ValidateModelConfig(c); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(context, ": ", std::string(s.message())));
  }
  return c;
}

absl::StatusOr<ModelConfig> ReadHuggingFaceConfig(const fs::path& dir) {
  const fs::path config_path = dir / "config.json";
  if (!fs::exists(config_path)) {
    return absl::NotFoundError(absl::StrCat(config_path.string(),
                                            ": missing (not a Hugging Face "
                                            "checkpoint folder?)"));
  }
  ASSIGN_OR_RETURN(json j, ReadJsonFile(config_path));
  ASSIGN_OR_RETURN(ModelConfig c,
                   ParseHuggingFaceConfig(j, config_path.string()));
  // generation_config.json lists the ids generation stops at; merge them.
  const fs::path gen_path = dir / "generation_config.json";
  if (fs::exists(gen_path)) {
    ASSIGN_OR_RETURN(json g, ReadJsonFile(gen_path));
    try {
      for (int64_t id : IdList(g, "eos_token_id")) {
        if (std::find(c.eos_ids.begin(), c.eos_ids.end(), id) ==
            c.eos_ids.end())
          c.eos_ids.push_back(id);
      }
      if (!c.bos_id) c.bos_id = OptionalInt(g, "bos_token_id");
    } catch (const json::exception& e) {
      return absl::InvalidArgumentError(
          absl::StrCat(gen_path.string(), ": malformed: ", e.what()));
    }
  }
  if (absl::Status s = ValidateModelConfig(c); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(config_path.string(), ": ", std::string(s.message())));
  }
  return c;
}

}  // namespace llmpack::convert
