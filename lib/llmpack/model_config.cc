#include "llmpack/model_config.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "llmpack/json_file.h"

namespace llmpack {
using nlohmann::json;

absl::Status ValidateModelConfig(const ModelConfig& c) {
  // The upper bound keeps every product of sizes (vocab x hidden, layers x
  // files) far inside int64 and stops a hostile config from making the
  // layout allocate billions of entries before any file is read; real
  // models are orders of magnitude below it.
  auto positive = [](const char* field, int64_t v) -> absl::Status {
    if (v > 0 && v <= kMaxConfigDim) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat("model config: ", field, " must be in 1..", kMaxConfigDim,
                     ", found ", v));
  };
  for (const auto& [field, value] :
       {std::pair<const char*, int64_t>{"hidden_size", c.hidden_size},
        {"num_layers", c.num_layers},
        {"num_heads", c.num_heads},
        {"num_kv_heads", c.num_kv_heads},
        {"head_dim", c.head_dim},
        {"ffn_size", c.ffn_size},
        {"vocab_size", c.vocab_size}}) {
    if (absl::Status s = positive(field, value); !s.ok()) return s;
  }
  if (c.num_heads % c.num_kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model config: num_heads (", c.num_heads,
        ") is not a multiple of num_kv_heads (", c.num_kv_heads, ")"));
  }
  if (c.head_dim % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model config: head_dim must be even for RoPE, found ", c.head_dim));
  }
  if (c.rope.type != "default" && c.rope.type != "llama3") {
    return absl::InvalidArgumentError(
        absl::StrCat("model config: unsupported RoPE type '", c.rope.type,
                     "' (supported: default, llama3)"));
  }
  if (!(c.rope.theta > 0)) {
    return absl::InvalidArgumentError("model config: rope theta must be > 0");
  }
  if (!(c.norm_eps > 0)) {
    return absl::InvalidArgumentError("model config: norm_eps must be > 0");
  }
  for (int64_t id : c.eos_ids) {
    if (id < 0 || id >= c.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("model config: eos id ", id, " outside vocabulary of ",
                       c.vocab_size));
    }
  }
  return absl::OkStatus();
}

json ModelConfigToJson(const ModelConfig& c) {
  json rope = {{"type", c.rope.type}, {"theta", c.rope.theta}};
  if (c.rope.type == "llama3") {
    rope["factor"] = c.rope.factor;
    rope["low_freq_factor"] = c.rope.low_freq_factor;
    rope["high_freq_factor"] = c.rope.high_freq_factor;
    rope["original_max_positions"] = c.rope.original_max_positions;
  }
  json j = {
      {"family", c.family},
      {"architecture", c.architecture},
      {"hidden_size", c.hidden_size},
      {"num_layers", c.num_layers},
      {"num_heads", c.num_heads},
      {"num_kv_heads", c.num_kv_heads},
      {"head_dim", c.head_dim},
      {"ffn_size", c.ffn_size},
      {"vocab_size", c.vocab_size},
      {"norm_eps", c.norm_eps},
      {"rope", rope},
      {"tie_word_embeddings", c.tie_word_embeddings},
      {"qkv_bias", c.qkv_bias},
      {"qk_norm", c.qk_norm},
      {"max_positions", c.max_positions},
      {"bos_id", c.bos_id ? json(*c.bos_id) : json(nullptr)},
      {"eos_ids", c.eos_ids},
      {"add_bos", c.add_bos},
      {"chat_template", c.chat_template},
  };
  if (!c.inferred_fields.empty()) j["inferred_fields"] = c.inferred_fields;
  return j;
}

absl::StatusOr<ModelConfig> ModelConfigFromJson(const json& j,
                                                const std::string& context) {
  if (!j.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(context, ": model config is not a JSON object"));
  }
  ModelConfig c;
  try {
    c.family = j.at("family").get<std::string>();
    c.architecture = j.at("architecture").get<std::string>();
    c.hidden_size = JsonInt(j.at("hidden_size"));
    c.num_layers = JsonInt(j.at("num_layers"));
    c.num_heads = JsonInt(j.at("num_heads"));
    c.num_kv_heads = JsonInt(j.at("num_kv_heads"));
    c.head_dim = JsonInt(j.at("head_dim"));
    c.ffn_size = JsonInt(j.at("ffn_size"));
    c.vocab_size = JsonInt(j.at("vocab_size"));
    c.norm_eps = j.at("norm_eps").get<double>();
    const json& rope = j.at("rope");
    c.rope.type = rope.at("type").get<std::string>();
    c.rope.theta = rope.at("theta").get<double>();
    c.rope.factor = rope.value("factor", 1.0);
    c.rope.low_freq_factor = rope.value("low_freq_factor", 1.0);
    c.rope.high_freq_factor = rope.value("high_freq_factor", 4.0);
    c.rope.original_max_positions =
        rope.contains("original_max_positions")
            ? JsonInt(rope["original_max_positions"])
            : 0;
    c.tie_word_embeddings = j.at("tie_word_embeddings").get<bool>();
    c.qkv_bias = j.at("qkv_bias").get<bool>();
    c.qk_norm = j.at("qk_norm").get<bool>();
    c.max_positions = JsonInt(j.at("max_positions"));
    if (!j.at("bos_id").is_null()) c.bos_id = JsonInt(j.at("bos_id"));
    for (const json& id : j.at("eos_ids").get<std::vector<json>>()) {
      c.eos_ids.push_back(JsonInt(id));
    }
    c.add_bos = j.value("add_bos", true);
    c.chat_template = j.value("chat_template", std::string());
    if (j.contains("inferred_fields")) {
      c.inferred_fields = j["inferred_fields"].get<std::vector<std::string>>();
    }
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(context, ": bad model config: ", e.what()));
  }
  if (absl::Status s = ValidateModelConfig(c); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(context, ": ", s.message()));
  }
  return c;
}

}  // namespace llmpack
