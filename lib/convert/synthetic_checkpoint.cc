#include "convert/synthetic_checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "convert/progress.h"
#include "llmpack/file_util.h"
#include "llmpack/status_macros.h"
#include "nlohmann/json.hpp"

namespace llmpack::convert {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct Tensor {
  std::string name;
  std::vector<int64_t> shape;
  enum class Init { kLinear, kNorm } init = Init::kLinear;
  int64_t elements() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

// The tensors of the checkpoint, in the order Hugging Face writes them.
std::vector<Tensor> TensorList(const SyntheticShape& s) {
  const int64_t q_dim = s.num_heads * s.head_dim;
  const int64_t kv_dim = s.num_kv_heads * s.head_dim;
  const bool qkv_bias = s.family == "qwen2";
  const bool qk_norm = s.family == "qwen3";
  std::vector<Tensor> t = {{"model.embed_tokens.weight",
                            {s.vocab_size, s.hidden_size}}};
  for (int64_t l = 0; l < s.num_layers; ++l) {
    const std::string p = absl::StrCat("model.layers.", l, ".");
    t.push_back({p + "input_layernorm.weight", {s.hidden_size},
                 Tensor::Init::kNorm});
    t.push_back({p + "self_attn.q_proj.weight", {q_dim, s.hidden_size}});
    t.push_back({p + "self_attn.k_proj.weight", {kv_dim, s.hidden_size}});
    t.push_back({p + "self_attn.v_proj.weight", {kv_dim, s.hidden_size}});
    if (qkv_bias) {
      t.push_back({p + "self_attn.q_proj.bias", {q_dim}});
      t.push_back({p + "self_attn.k_proj.bias", {kv_dim}});
      t.push_back({p + "self_attn.v_proj.bias", {kv_dim}});
    }
    if (qk_norm) {
      t.push_back({p + "self_attn.q_norm.weight", {s.head_dim},
                   Tensor::Init::kNorm});
      t.push_back({p + "self_attn.k_norm.weight", {s.head_dim},
                   Tensor::Init::kNorm});
    }
    t.push_back({p + "self_attn.o_proj.weight", {s.hidden_size, q_dim}});
    t.push_back({p + "post_attention_layernorm.weight", {s.hidden_size},
                 Tensor::Init::kNorm});
    t.push_back({p + "mlp.gate_proj.weight", {s.ffn_size, s.hidden_size}});
    t.push_back({p + "mlp.up_proj.weight", {s.ffn_size, s.hidden_size}});
    t.push_back({p + "mlp.down_proj.weight", {s.hidden_size, s.ffn_size}});
  }
  t.push_back({"model.norm.weight", {s.hidden_size}, Tensor::Init::kNorm});
  if (!s.tie_word_embeddings) {
    t.push_back({"lm_head.weight", {s.vocab_size, s.hidden_size}});
  }
  return t;
}

const char* SafetensorsDType(DType d) {
  return d == DType::kF32 ? "F32" : d == DType::kF16 ? "F16" : "BF16";
}

const char* TorchDType(DType d) {
  return d == DType::kF32 ? "float32" : d == DType::kF16 ? "float16"
                                                        : "bfloat16";
}

// SplitMix64: a tiny, well-mixed generator whose output is the same on every
// platform (std:: distributions are not specified bit-exactly).
class Random {
 public:
  explicit Random(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Approximately N(0, 1): the sum of four 16-bit uniforms, centred and
  // scaled (Irwin-Hall, variance 4/12), from one 64-bit draw.
  float Normal() {
    const uint64_t r = Next();
    const float sum = static_cast<float>((r & 0xFFFF) + ((r >> 16) & 0xFFFF) +
                                         ((r >> 32) & 0xFFFF) + (r >> 48));
    constexpr float kMean = 2.0f * 65535.0f;
    constexpr float kInvStd = 1.0f / (65535.0f * 0.57735027f);  // sqrt(1/3)
    return (sum - kMean) * kInvStd;
  }

 private:
  uint64_t state_;
};

json ConfigJson(const SyntheticShape& s, DType dtype) {
  const char* arch = s.family == "mistral" ? "MistralForCausalLM"
                     : s.family == "qwen2" ? "Qwen2ForCausalLM"
                     : s.family == "qwen3" ? "Qwen3ForCausalLM"
                                           : "LlamaForCausalLM";
  json c = {{"architectures", {arch}},
            {"model_type", s.family},
            {"hidden_size", s.hidden_size},
            {"intermediate_size", s.ffn_size},
            {"num_hidden_layers", s.num_layers},
            {"num_attention_heads", s.num_heads},
            {"num_key_value_heads", s.num_kv_heads},
            {"head_dim", s.head_dim},
            {"vocab_size", s.vocab_size},
            {"hidden_act", "silu"},
            {"rms_norm_eps", 1e-5},
            {"rope_theta", s.rope_theta},
            {"max_position_embeddings", s.max_positions},
            {"tie_word_embeddings", s.tie_word_embeddings},
            {"torch_dtype", TorchDType(dtype)},
            {"bos_token_id", 1},
            {"eos_token_id", 2}};
  if (s.rope_type == "llama3") {
    c["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", s.rope_factor},
                         {"low_freq_factor", 1.0},
                         {"high_freq_factor", 4.0},
                         {"original_max_position_embeddings", 8192}};
  }
  return c;
}

absl::Status Validate(const SyntheticOptions& o) {
  const SyntheticShape& s = o.shape;
  if (s.family != "llama" && s.family != "mistral" && s.family != "qwen2" &&
      s.family != "qwen3") {
    return absl::InvalidArgumentError(
        absl::StrCat("family: expected llama, mistral, qwen2 or qwen3, found '",
                     s.family, "'"));
  }
  for (auto [name, v] : {std::pair{"hidden_size", s.hidden_size},
                         {"num_layers", s.num_layers},
                         {"num_heads", s.num_heads},
                         {"num_kv_heads", s.num_kv_heads},
                         {"head_dim", s.head_dim},
                         {"ffn_size", s.ffn_size},
                         {"vocab_size", s.vocab_size}}) {
    if (v < 1 || v > (int64_t{1} << 24)) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, ": expected a value in 1..16777216, found ", v));
    }
  }
  if (s.num_heads % s.num_kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "num_heads (", s.num_heads, ") must be a multiple of num_kv_heads (",
        s.num_kv_heads, ")"));
  }
  if (s.head_dim % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("head_dim must be even for RoPE, found ", s.head_dim));
  }
  if (s.rope_type != "llama3" && s.rope_type != "default") {
    return absl::InvalidArgumentError(absl::StrCat(
        "rope_type: expected llama3 or default, found '", s.rope_type, "'"));
  }
  if (!IsFloatDType(o.dtype)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dtype: expected f32, f16 or bf16, found ", DTypeName(o.dtype)));
  }
  return absl::OkStatus();
}

absl::Status WriteAll(int fd, const void* data, size_t size,
                      const fs::path& path) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError(
          absl::StrCat(path.string(), ": write failed: ", std::strerror(errno)));
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

// Streams the safetensors file: header, then every tensor generated in
// chunks so memory stays small whatever the model size.
absl::StatusOr<uint64_t> WriteSafetensors(const fs::path& path,
                                          const SyntheticOptions& o,
                                          ProgressLine& progress) {
  const std::vector<Tensor> tensors = TensorList(o.shape);
  const size_t elem = DTypeSize(o.dtype);
  json header = json::object();
  uint64_t offset = 0;
  for (const Tensor& t : tensors) {
    const uint64_t bytes = static_cast<uint64_t>(t.elements()) * elem;
    header[t.name] = {{"dtype", SafetensorsDType(o.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  header["__metadata__"] = {{"format", "pt"}, {"generator", "llmsynth"}};
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // 8-byte aligned data
  const uint64_t header_len = text.size();

  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    return absl::InternalError(absl::StrCat(
        path.string(), ": cannot create: ", std::strerror(errno)));
  }
  absl::Status status = WriteAll(fd, &header_len, 8, path);
  if (status.ok()) status = WriteAll(fd, text.data(), text.size(), path);

  Random rng(o.seed);
  constexpr int64_t kChunk = 1 << 20;  // elements generated per write
  std::vector<float> values(kChunk);
  std::vector<uint8_t> bytes(kChunk * elem);
  for (size_t i = 0; i < tensors.size() && status.ok(); ++i) {
    const Tensor& t = tensors[i];
    const bool norm = t.init == Tensor::Init::kNorm;
    for (int64_t done = 0; done < t.elements() && status.ok();) {
      const int64_t n = std::min(kChunk, t.elements() - done);
      for (int64_t k = 0; k < n; ++k) {
        values[k] = norm ? 1.0f + 0.1f * rng.Normal()
                         : o.init_std * rng.Normal();
      }
      status = ConvertElements(DType::kF32, values.data(), o.dtype,
                               bytes.data(), static_cast<size_t>(n));
      if (status.ok()) status = WriteAll(fd, bytes.data(), n * elem, path);
      progress.Add(n * elem);
      done += n;
    }
  }
  if (status.ok() && ::fsync(fd) != 0) {
    status = absl::InternalError(
        absl::StrCat(path.string(), ": fsync failed: ", std::strerror(errno)));
  }
  ::close(fd);
  RETURN_IF_ERROR(status);
  return 8 + header_len + offset;
}

absl::Status CopyTokenizer(const fs::path& source, const fs::path& dir) {
  std::error_code ec;
  const bool is_dir = fs::is_directory(source, ec);
  const fs::path json_file = is_dir ? source / "tokenizer.json" : source;
  if (!fs::is_regular_file(json_file, ec)) {
    return absl::NotFoundError(absl::StrCat(
        json_file.string(), ": tokenizer file not found (expected a "
                            "tokenizer.json or a folder holding one)"));
  }
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(json_file));
  RETURN_IF_ERROR(WriteStringToFile(dir / "tokenizer.json", text));
  const fs::path config = is_dir ? source / "tokenizer_config.json"
                                 : source.parent_path() /
                                       (source.stem().string() + "_config.json");
  if (fs::is_regular_file(config, ec)) {
    ASSIGN_OR_RETURN(std::string c, ReadFileToString(config));
    RETURN_IF_ERROR(WriteStringToFile(dir / "tokenizer_config.json", c));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SyntheticShape> SyntheticPreset(const std::string& name) {
  SyntheticShape s;  // llama-3.2-1b
  if (name == "llama-3.2-1b") return s;
  if (name == "llama-3-8b") {
    s.hidden_size = 4096;
    s.num_layers = 32;
    s.head_dim = 128;
    s.ffn_size = 14336;
    s.tie_word_embeddings = false;
    s.rope_factor = 8.0;
    s.max_positions = 8192;
    return s;
  }
  if (name == "tiny") {
    s.hidden_size = 128;
    s.num_layers = 2;
    s.num_heads = 4;
    s.num_kv_heads = 2;
    s.head_dim = 32;
    s.ffn_size = 352;
    s.vocab_size = 512;
    s.max_positions = 2048;
    return s;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown preset '", name,
      "' (expected llama-3.2-1b, llama-3-8b or tiny)"));
}

absl::StatusOr<SyntheticResult> WriteSyntheticCheckpoint(
    const SyntheticOptions& options) {
  RETURN_IF_ERROR(Validate(options));
  ASSIGN_OR_RETURN(StagingDirectory staging,
                   StagingDirectory::Create(options.output, options.force));
  SyntheticResult result;
  for (const Tensor& t : TensorList(options.shape)) {
    result.parameters += static_cast<uint64_t>(t.elements());
  }
  ProgressLine progress("synthesize", result.parameters * DTypeSize(options.dtype),
                        options.progress);
  RETURN_IF_ERROR(WriteStringToFile(
      staging.path() / "config.json",
      ConfigJson(options.shape, options.dtype).dump(2) + "\n"));
  ASSIGN_OR_RETURN(result.bytes,
                   WriteSafetensors(staging.path() / "model.safetensors",
                                    options, progress));
  if (!options.tokenizer.empty()) {
    RETURN_IF_ERROR(CopyTokenizer(options.tokenizer, staging.path()));
  }
  progress.Finish();
  RETURN_IF_ERROR(staging.Commit());
  result.seconds = progress.ElapsedSeconds();
  return result;
}

}  // namespace llmpack::convert
