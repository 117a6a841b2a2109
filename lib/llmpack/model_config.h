// The normalized model configuration stored in manifest.json, independent of
// the source format (Hugging Face config.json, ONNX graph). Plain data.
#ifndef LLMPACK_MODEL_CONFIG_H_
#define LLMPACK_MODEL_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace llmpack {

struct RopeConfig {
  std::string type = "default";  // "default" or "llama3"
  double theta = 10000.0;
  // llama3 scaling parameters (ignored for "default").
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_positions = 0;
};

struct ModelConfig {
  std::string family;        // "llama", "mistral", "qwen2", "qwen3"
  std::string architecture;  // e.g. "LlamaForCausalLM"
  int64_t hidden_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t ffn_size = 0;
  int64_t vocab_size = 0;
  double norm_eps = 1e-5;
  RopeConfig rope;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;  // q/k/v projections carry a bias (Qwen2)
  bool qk_norm = false;   // per-head RMSNorm on q and k (Qwen3)
  int64_t max_positions = 0;
  std::optional<int64_t> bos_id;
  std::vector<int64_t> eos_ids;  // every id that ends generation
  bool add_bos = true;           // whether prompts start with BOS
  std::string chat_template;     // Jinja text, empty when the source has none
  // Config fields that were inferred (e.g. from an ONNX graph) rather than
  // read from a config file; empty for Hugging Face sources.
  std::vector<std::string> inferred_fields;

  int64_t q_dim() const { return num_heads * head_dim; }
  int64_t kv_dim() const { return num_kv_heads * head_dim; }
};

// Largest value ValidateModelConfig accepts for any size or count (hidden,
// layers, heads, head_dim, ffn, vocab): 2^24.
inline constexpr int64_t kMaxConfigDim = int64_t{1} << 24;

// Checks internal consistency (sizes in 1..kMaxConfigDim, heads divide,
// known RoPE).
absl::Status ValidateModelConfig(const ModelConfig& config);

nlohmann::json ModelConfigToJson(const ModelConfig& config);
// `context` names the file for error messages.
absl::StatusOr<ModelConfig> ModelConfigFromJson(const nlohmann::json& json,
                                                const std::string& context);

}  // namespace llmpack

#endif  // LLMPACK_MODEL_CONFIG_H_
