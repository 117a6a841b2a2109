// Which tensors a package holds, in which file, with which shape. The single
// source of truth shared by converters (what to write) and the runtime (what
// to expect). Tensor names inside a file follow Hugging Face's names with the
// "model." / "model.layers.N." prefix removed.
#ifndef LLMPACK_PACKAGE_LAYOUT_H_
#define LLMPACK_PACKAGE_LAYOUT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "formats/tensor_file_format.h"
#include "llmpack/model_config.h"

namespace llmpack {

inline constexpr char kManifestFile[] = "manifest.json";
inline constexpr char kTokenizerFile[] = "tokenizer.txt";
inline constexpr char kEmbeddingFile[] = "embedding.bin";
inline constexpr char kLmFile[] = "lm.bin";

// Tensor names (see formats/package_format.md).
inline constexpr char kEmbedTokens[] = "embed_tokens.weight";
inline constexpr char kFinalNorm[] = "norm.weight";
inline constexpr char kLmHead[] = "lm_head.weight";
inline constexpr char kInputNorm[] = "input_layernorm.weight";
inline constexpr char kPostAttentionNorm[] = "post_attention_layernorm.weight";
inline constexpr char kQProj[] = "self_attn.q_proj.weight";
inline constexpr char kKProj[] = "self_attn.k_proj.weight";
inline constexpr char kVProj[] = "self_attn.v_proj.weight";
inline constexpr char kOProj[] = "self_attn.o_proj.weight";
inline constexpr char kQBias[] = "self_attn.q_proj.bias";
inline constexpr char kKBias[] = "self_attn.k_proj.bias";
inline constexpr char kVBias[] = "self_attn.v_proj.bias";
inline constexpr char kQNorm[] = "self_attn.q_norm.weight";
inline constexpr char kKNorm[] = "self_attn.k_norm.weight";
inline constexpr char kGateProj[] = "mlp.gate_proj.weight";
inline constexpr char kUpProj[] = "mlp.up_proj.weight";
inline constexpr char kDownProj[] = "mlp.down_proj.weight";

// "block_007.bin" for layer 7.
std::string BlockFileName(int64_t layer);

struct ExpectedTensor {
  std::string name;            // name inside the file
  std::vector<int64_t> shape;  // Hugging Face layout: [out, in] for Linear
  bool is_matrix = false;      // a Linear weight (quantizable)
};

struct ExpectedFile {
  std::string file_name;  // e.g. "block_000.bin"
  format::FileKind kind;
  int32_t block_index = -1;
  std::vector<ExpectedTensor> tensors;  // in file order
};

// Embedding, one block per layer, then lm; tensors in the order written.
std::vector<ExpectedFile> ExpectedPackageFiles(const ModelConfig& config);

// The Hugging Face checkpoint name of a package tensor, e.g.
// ("block_002.bin", "mlp.up_proj.weight") ->
// "model.layers.2.mlp.up_proj.weight".
std::string HuggingFaceTensorName(const ExpectedFile& file,
                                  const ExpectedTensor& tensor);

}  // namespace llmpack

#endif  // LLMPACK_PACKAGE_LAYOUT_H_
