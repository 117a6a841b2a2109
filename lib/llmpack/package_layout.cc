#include "llmpack/package_layout.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace llmpack {

std::string BlockFileName(int64_t layer) {
  return absl::StrFormat("block_%03d.bin", layer);
}

std::vector<ExpectedFile> ExpectedPackageFiles(const ModelConfig& c) {
  std::vector<ExpectedFile> files;
  const int64_t h = c.hidden_size;
  files.push_back({kEmbeddingFile,
                   format::FileKind::kEmbedding,
                   -1,
                   {{kEmbedTokens, {c.vocab_size, h}, false}}});
  for (int64_t layer = 0; layer < c.num_layers; ++layer) {
    ExpectedFile block{BlockFileName(layer),
                       format::FileKind::kBlock,
                       static_cast<int32_t>(layer),
                       {}};
    auto& t = block.tensors;
    t.push_back({kInputNorm, {h}, false});
    t.push_back({kQProj, {c.q_dim(), h}, true});
    t.push_back({kKProj, {c.kv_dim(), h}, true});
    t.push_back({kVProj, {c.kv_dim(), h}, true});
    if (c.qkv_bias) {
      t.push_back({kQBias, {c.q_dim()}, false});
      t.push_back({kKBias, {c.kv_dim()}, false});
      t.push_back({kVBias, {c.kv_dim()}, false});
    }
    if (c.qk_norm) {
      t.push_back({kQNorm, {c.head_dim}, false});
      t.push_back({kKNorm, {c.head_dim}, false});
    }
    t.push_back({kOProj, {h, c.q_dim()}, true});
    t.push_back({kPostAttentionNorm, {h}, false});
    t.push_back({kGateProj, {c.ffn_size, h}, true});
    t.push_back({kUpProj, {c.ffn_size, h}, true});
    t.push_back({kDownProj, {h, c.ffn_size}, true});
    files.push_back(std::move(block));
  }
  files.push_back(
      {kLmFile,
       format::FileKind::kLm,
       -1,
       {{kFinalNorm, {h}, false}, {kLmHead, {c.vocab_size, h}, true}}});
  return files;
}

std::string HuggingFaceTensorName(const ExpectedFile& file,
                                  const ExpectedTensor& tensor) {
  if (file.kind == format::FileKind::kBlock) {
    return absl::StrCat("model.layers.", file.block_index, ".", tensor.name);
  }
  if (tensor.name == kLmHead) return kLmHead;
  return absl::StrCat("model.", tensor.name);
}

}  // namespace llmpack
