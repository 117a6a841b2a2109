#include "onnx_import/onnx_convert.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "convert/hf_config.h"
#include "convert/hf_convert.h"
#include "llmpack/file_util.h"
#include "llmpack/package_layout.h"
#include "llmpack/status_macros.h"
#include "onnx_import/graph.h"
#include "onnx_import/nbits.h"
#include "onnx_import/rope_inference.h"

namespace llmpack::onnx_import {
namespace fs = std::filesystem;

namespace {

// The shortest decimal that reads back as the same f32 (the graph stores
// epsilon as f32: 9.99999975e-06 is the exporter's 1e-05).
double ShortestF32Decimal(double value) {
  const float f = static_cast<float>(value);
  for (int digits = 1; digits <= 9; ++digits) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.*g", digits, static_cast<double>(f));
    if (std::strtof(buf, nullptr) == f) return std::strtod(buf, nullptr);
  }
  return f;
}

// The whole tensor a (possibly packed) weight is a band of.
WeightRef Whole(const WeightRef& ref) {
  WeightRef whole = ref;
  if (ref.packed_rows > 0) {
    whole.shape[0] = ref.packed_rows;
    whole.row_offset = 0;
    whole.packed_rows = 0;
  }
  return whole;
}

std::map<std::string, WeightRef> WeightsByName(const RecoveredModel& r) {
  std::map<std::string, WeightRef> w;
  w["model.embed_tokens.weight"] = r.embedding;
  w["model.norm.weight"] = r.final_norm;
  w["lm_head.weight"] = r.lm_head;
  for (size_t i = 0; i < r.layers.size(); ++i) {
    const LayerWeights& l = r.layers[i];
    const std::string p = absl::StrCat("model.layers.", i, ".");
    const std::pair<const char*, const WeightRef*> roles[] = {
        {kInputNorm, &l.input_norm},
        {kQProj, &l.q},
        {kKProj, &l.k},
        {kVProj, &l.v},
        {kQBias, &l.q_bias},
        {kKBias, &l.k_bias},
        {kVBias, &l.v_bias},
        {kQNorm, &l.q_norm},
        {kKNorm, &l.k_norm},
        {kOProj, &l.o},
        {kPostAttentionNorm, &l.post_norm},
        {kGateProj, &l.gate},
        {kUpProj, &l.up},
        {kDownProj, &l.down}};
    for (const auto& [name, ref] : roles) {
      if (ref->present()) w[p + name] = *ref;
    }
  }
  return w;
}

absl::StatusOr<DType> ToDType(int32_t onnx_type) {
  switch (onnx_type) {
    case onnx::TensorProto::FLOAT:
      return DType::kF32;
    case onnx::TensorProto::FLOAT16:
      return DType::kF16;
    case onnx::TensorProto::BFLOAT16:
      return DType::kBF16;
    default:
      return absl::UnimplementedError(
          absl::StrCat("unsupported ONNX dtype ", OnnxTypeName(onnx_type),
                       " (supported: FLOAT, FLOAT16, BFLOAT16)"));
  }
}

// Transposes a [rows, cols] matrix of `elem`-byte elements, in tiles so both
// sides stay cache-friendly.
std::vector<uint8_t> Transpose(absl::Span<const uint8_t> in, int64_t rows,
                               int64_t cols, size_t elem) {
  std::vector<uint8_t> out(in.size());
  constexpr int64_t kTile = 32;
  for (int64_t r0 = 0; r0 < rows; r0 += kTile) {
    for (int64_t c0 = 0; c0 < cols; c0 += kTile) {
      for (int64_t r = r0; r < std::min(rows, r0 + kTile); ++r) {
        for (int64_t c = c0; c < std::min(cols, c0 + kTile); ++c) {
          std::memcpy(&out[(c * rows + r) * elem], &in[(r * cols + c) * elem],
                      elem);
        }
      }
    }
  }
  return out;
}

// A config.json beside the model must describe the graph it sits next to.
absl::Status CheckConfigAgainstGraph(const ModelConfig& c, const GraphFacts& f,
                                     int64_t layers,
                                     const std::string& config_path) {
  std::vector<std::string> mismatches;
  auto check = [&](const char* field, int64_t config_value,
                   int64_t graph_value) {
    if (config_value != graph_value) {
      mismatches.push_back(absl::StrCat(field, " is ", config_value,
                                        " but the graph has ", graph_value));
    }
  };
  check("hidden_size", c.hidden_size, f.hidden_size);
  check("num_layers", c.num_layers, layers);
  check("vocab_size", c.vocab_size, f.vocab_size);
  check("ffn_size", c.ffn_size, f.ffn_size);
  check("num_heads * head_dim", c.q_dim(), f.q_dim);
  check("num_kv_heads * head_dim", c.kv_dim(), f.kv_dim);
  if (f.head_dim > 0) check("head_dim", c.head_dim, f.head_dim);
  check("qkv_bias", c.qkv_bias, f.qkv_bias);
  check("qk_norm", c.qk_norm, f.qk_norm);
  if (c.tie_word_embeddings && !f.tied) {
    mismatches.push_back(
        "tie_word_embeddings is true but the graph's output projection is "
        "not the embedding table");
  }
  // The graph stores epsilon and the RoPE frequencies as f32.
  if (std::fabs(static_cast<float>(c.norm_eps) - f.norm_eps) >
      1e-6 * f.norm_eps) {
    mismatches.push_back(absl::StrCat("norm_eps is ", c.norm_eps,
                                      " but the graph adds ", f.norm_eps));
  }
  if (!f.inv_freq.empty() &&
      2 * static_cast<int64_t>(f.inv_freq.size()) == c.head_dim) {
    const std::vector<double> want = RopeInverseFrequencies(c.rope, c.head_dim);
    for (size_t i = 0; i < want.size(); ++i) {
      if (std::fabs(f.inv_freq[i] - want[i]) > 1e-5 * want[i]) {
        mismatches.push_back(
            absl::StrCat("RoPE (", c.rope.type, ", theta ", c.rope.theta,
                         ") gives inverse frequency ", want[i], " at index ", i,
                         " but the graph uses ", f.inv_freq[i]));
        break;
      }
    }
  }
  if (mismatches.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      config_path,
      " does not match the ONNX graph: ", absl::StrJoin(mismatches, "; ")));
}

absl::StatusOr<ModelConfig> InferConfig(const RecoveredModel& r,
                                        const std::string& where) {
  const GraphFacts& f = r.facts;
  ModelConfig c;
  if (f.qk_norm) {
    c.family = "qwen3", c.architecture = "Qwen3ForCausalLM";
  } else if (f.qkv_bias) {
    c.family = "qwen2", c.architecture = "Qwen2ForCausalLM";
  } else {
    c.family = "llama", c.architecture = "LlamaForCausalLM";
  }
  c.hidden_size = f.hidden_size;
  c.num_layers = static_cast<int64_t>(r.layers.size());
  c.vocab_size = f.vocab_size;
  c.ffn_size = f.ffn_size;
  if (f.head_dim <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        where,
        ": no config.json beside the model and the graph does not show "
        "head_dim (no Reshape into heads, q_norm or RoPE frequencies)"));
  }
  c.head_dim = f.head_dim;
  c.num_heads = f.q_dim / f.head_dim;
  c.num_kv_heads = f.kv_dim / f.head_dim;
  c.norm_eps = ShortestF32Decimal(f.norm_eps);
  if (f.inv_freq.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        where,
        ": no config.json beside the model and no RoPE inverse frequencies "
        "in the graph (",
        f.rope_note,
        "; expected Cos/Sin of positions times a constant, or cos/sin "
        "tables); put config.json beside the model"));
  }
  absl::StatusOr<RopeConfig> rope = InferRope(f.inv_freq, c.head_dim);
  if (!rope.ok()) {
    return absl::Status(rope.status().code(),
                        absl::StrCat(where, ": ", rope.status().message()));
  }
  c.rope = *rope;
  c.tie_word_embeddings = f.tied;
  c.qkv_bias = f.qkv_bias;
  c.qk_norm = f.qk_norm;
  c.inferred_fields = {"family",     "architecture", "hidden_size",
                       "num_layers", "num_heads",    "num_kv_heads",
                       "head_dim",   "ffn_size",     "vocab_size",
                       "norm_eps",   "rope",         "tie_word_embeddings",
                       "qkv_bias",   "qk_norm"};
  // Precomputed cos/sin tables bound the positions the export supports.
  if (f.rope_table_rows > 0) {
    c.max_positions = f.rope_table_rows;
    c.inferred_fields.push_back("max_positions");
  }
  if (absl::Status s = ValidateModelConfig(c); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": configuration inferred from the graph is invalid: ",
        std::string(s.message())));
  }
  return c;
}

}  // namespace

OnnxTensorSource::OnnxTensorSource(const OnnxModel& model,
                                   const RecoveredModel& recovered)
    : model_(model), weights_(WeightsByName(recovered)) {
  // In the units the writer reports progress in: bytes of the tensors it
  // is handed (dequantized weights are f32; a tied lm_head is not read).
  for (const auto& [name, ref] : weights_) {
    if (name == kLmHead && recovered.facts.tied) continue;
    const onnx::TensorProto* t = model_.FindConstant(ref.value);
    int64_t n = 1;
    for (int64_t d : ref.shape) n *= d;
    const size_t elem =
        ref.nbits ? sizeof(float) : OnnxTypeSize(t->data_type());
    total_bytes_ += n * elem;
  }
}

absl::StatusOr<std::string> OnnxTensorSource::CheckDTypes() const {
  std::map<DType, uint64_t> bytes;
  int64_t quantized_bits = 0;
  for (const auto& [name, ref] : weights_) {
    if (ref.nbits) {
      RETURN_IF_ERROR(ValidateNBits(model_, Whole(ref)));
      quantized_bits = ref.nbits->bits;
      continue;
    }
    const onnx::TensorProto* t = model_.FindConstant(ref.value);
    absl::StatusOr<DType> dtype = ToDType(t->data_type());
    if (!dtype.ok()) {
      return absl::UnimplementedError(
          absl::StrCat(model_.path().string(), ": tensor '", ref.value, "' (",
                       name, "): ", dtype.status().message()));
    }
    int64_t n = 1;
    for (int64_t d : ref.shape) n *= d;
    bytes[*dtype] += n * OnnxTypeSize(t->data_type());
  }
  // Quantized Linears hold most of a model's weights.
  if (quantized_bits > 0) return absl::StrCat("int", quantized_bits);
  DType main = DType::kF32;
  uint64_t most = 0;
  for (const auto& [dtype, n] : bytes) {
    if (n > most) main = dtype, most = n;
  }
  return std::string(DTypeName(main));
}

bool OnnxTensorSource::HasQuantizedWeights() const {
  for (const auto& [name, ref] : weights_) {
    if (ref.nbits) return true;
  }
  return false;
}

absl::StatusOr<nlohmann::json> OnnxTensorSource::PlanNBits(
    std::optional<DType> output_dtype) {
  kept_q4_.clear();
  nlohmann::json tensors = nlohmann::json::array();
  int64_t kept = 0, dequantized = 0;
  for (const auto& [name, ref] : weights_) {
    if (!ref.nbits) continue;
    const WeightRef whole = Whole(ref);
    RETURN_IF_ERROR(ValidateNBits(model_, whole));
    nlohmann::json entry = {{"tensor", name},
                            {"node", ref.nbits->node},
                            {"bits", ref.nbits->bits},
                            {"block_size", ref.nbits->block_size}};
    absl::StatusOr<quant::QuantFormat> format =
        !output_dtype ? MapNBitsToQ4(model_, whole)
                      : absl::FailedPreconditionError(absl::StrCat(
                            "output dtype ", DTypeName(*output_dtype),
                            " was requested (--dtype)"));
    if (format.ok()) {
      kept_q4_[name] = *format;
      entry["written_as"] = "q4";
      entry["group_size"] = format->group_size;
      entry["scale_dtype"] = DTypeName(format->scale_dtype);
      entry["zero_point"] = format->zero_point;
      ++kept;
      // Progress counts the bytes handed to the writer: q4 rows, not f32.
      const int64_t rows = ref.shape[0];
      ASSIGN_OR_RETURN(quant::RowLayout row,
                       quant::MakeRowLayout(*format, ref.shape[1]));
      total_bytes_ -= rows * ref.shape[1] * sizeof(float);
      total_bytes_ += rows * row.row_bytes;
    } else {
      entry["written_as"] = DTypeName(output_dtype.value_or(DType::kF32));
      entry["reason"] = std::string(format.status().message());
      ++dequantized;
    }
    tensors.push_back(std::move(entry));
  }
  return nlohmann::json{{"matmulnbits",
                         {{"kept_q4", kept},
                          {"dequantized", dequantized},
                          {"tensors", std::move(tensors)}}}};
}

absl::StatusOr<convert::SourceTensor> OnnxTensorSource::Get(
    const std::string& hf_name) {
  auto it = weights_.find(hf_name);
  if (it == weights_.end()) {
    return absl::NotFoundError(absl::StrCat("tensor ", hf_name, " not found"));
  }
  const WeightRef& ref = it->second;
  const std::string label = absl::StrCat(hf_name, " (ONNX '", ref.value, "')");
  convert::SourceTensor out;
  if (auto kept = kept_q4_.find(hf_name); kept != kept_q4_.end()) {
    ASSIGN_OR_RETURN(std::vector<uint8_t> rows,
                     RepackNBitsAsQ4(model_, Whole(ref), kept->second));
    auto owned = std::make_shared<std::vector<uint8_t>>(std::move(rows));
    out = {label,
           DType::kQ4,
           Whole(ref).shape,
           {owned->data(), owned->size()},
           owned,
           static_cast<uint32_t>(kept->second.group_size),
           static_cast<uint16_t>(kept->second.scale_dtype),
           static_cast<uint16_t>(
               kept->second.zero_point ? format::kQuantFlagZeroPoint : 0)};
  } else {
    ASSIGN_OR_RETURN(out, ReadWhole(Whole(ref), label));
  }
  if (ref.packed_rows > 0) {
    // A band of a packed weight: rows are contiguous in [out, in] layout
    // (float and q4 rows alike).
    const uint64_t row_bytes = out.data.size() / ref.packed_rows;
    out.data =
        out.data.subspan(ref.row_offset * row_bytes, ref.shape[0] * row_bytes);
    out.shape = ref.shape;
  }
  return out;
}

absl::StatusOr<convert::SourceTensor> OnnxTensorSource::ReadWhole(
    const WeightRef& ref, const std::string& label) const {
  if (ref.nbits) {
    ASSIGN_OR_RETURN(std::vector<float> values, DequantizeNBits(model_, ref));
    auto owned = std::make_shared<std::vector<uint8_t>>(
        reinterpret_cast<const uint8_t*>(values.data()),
        reinterpret_cast<const uint8_t*>(values.data() + values.size()));
    const absl::Span<const uint8_t> bytes(*owned);
    return convert::SourceTensor{label, DType::kF32, ref.shape, bytes,
                                 std::move(owned)};
  }
  ASSIGN_OR_RETURN(ConstantData data, model_.Data(ref.value));
  absl::StatusOr<DType> dtype = ToDType(data.onnx_type);
  if (!dtype.ok()) {
    return absl::UnimplementedError(absl::StrCat(
        model_.path().string(), ": ", label, ": ", dtype.status().message()));
  }
  convert::SourceTensor out{label, *dtype, ref.shape, data.bytes, data.owned};
  if (ref.transpose) {
    // Stored [in, out] = shape reversed; the package wants [out, in].
    auto owned = std::make_shared<std::vector<uint8_t>>(
        Transpose(data.bytes, ref.shape[1], ref.shape[0], DTypeSize(*dtype)));
    out.data = {owned->data(), owned->size()};
    out.owned = std::move(owned);
  }
  return out;
}

void OnnxTensorSource::Release(const std::string& hf_name) {
  auto it = weights_.find(hf_name);
  if (it != weights_.end()) model_.ReleasePages(it->second.value);
}

absl::StatusOr<OnnxImport> OpenOnnx(const fs::path& model_path) {
  OnnxImport imp;
  ASSIGN_OR_RETURN(imp.model, OnnxModel::Load(model_path));
  ASSIGN_OR_RETURN(Graph graph, Graph::Build(*imp.model));
  ASSIGN_OR_RETURN(imp.recovered, RecoverModel(graph));
  const fs::path dir = model_path.parent_path().empty()
                           ? fs::path(".")
                           : model_path.parent_path();
  const fs::path config_path = dir / "config.json";
  const bool has_config = fs::is_regular_file(config_path);
  if (has_config) {
    ASSIGN_OR_RETURN(imp.config, convert::ReadHuggingFaceConfig(dir));
    RETURN_IF_ERROR(CheckConfigAgainstGraph(
        imp.config, imp.recovered.facts,
        static_cast<int64_t>(imp.recovered.layers.size()),
        config_path.string()));
  } else {
    ASSIGN_OR_RETURN(imp.config,
                     InferConfig(imp.recovered, model_path.string()));
  }
  OnnxTensorSource probe(*imp.model, imp.recovered);
  ASSIGN_OR_RETURN(imp.source.dtype, probe.CheckDTypes());
  imp.quantized = probe.HasQuantizedWeights();

  SourceInfo& s = imp.source;
  s.path = model_path.string();
  s.format = "onnx";
  s.architecture = imp.config.architecture;
  s.files = {model_path.filename().string()};
  for (const std::string& f : imp.model->ExternalFiles()) s.files.push_back(f);
  if (has_config) s.files.push_back("config.json");
  imp.tokenizer_files = convert::FindTokenizerFiles(dir);
  for (const fs::path& f : imp.tokenizer_files) {
    s.files.push_back(f.filename().string());
  }
  ASSIGN_OR_RETURN(s.content_hash, convert::HashSourceFiles(dir, s.files));
  return imp;
}

absl::StatusOr<Manifest> ConvertOnnx(const fs::path& model_path,
                                     convert::WritePackageOptions options) {
  if (!fs::is_regular_file(model_path)) {
    return absl::NotFoundError(
        absl::StrCat(model_path.string(), ": not a file"));
  }
  // The package may go inside the model's folder, but must not replace it
  // or the model file.
  const fs::path dir = fs::absolute(model_path).parent_path();
  if (IsSameOrInside(dir, options.output_dir)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "refusing to write ", options.output_dir.string(),
        ": it would contain or replace the model's folder ", dir.string()));
  }
  ASSIGN_OR_RETURN(OnnxImport imp, OpenOnnx(model_path));
  for (const std::string& file : imp.source.files) {
    if (IsSameOrInside(dir / file, options.output_dir)) {
      return absl::InvalidArgumentError(
          absl::StrCat("refusing to write ", options.output_dir.string(),
                       ": it would replace the source file ", file));
    }
  }
  if (!imp.tokenizer_files.empty()) options.tokenizer_dir = dir;
  OnnxTensorSource tensors(*imp.model, imp.recovered);
  if (imp.quantized) {
    ASSIGN_OR_RETURN(nlohmann::json plan,
                     tensors.PlanNBits(options.output_dtype));
    // Nothing kept as q4: a float package, dequantized weights are exact in
    // f32.
    if (plan["matmulnbits"]["kept_q4"] == 0 && !options.output_dtype) {
      options.output_dtype = DType::kF32;
    }
    options.manifest_extensions["onnx_import"] = std::move(plan);
  }
  return convert::WritePackage(imp.config, imp.source, tensors, options);
}

}  // namespace llmpack::onnx_import
