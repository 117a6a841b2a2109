#include "runtime/test_package.h"

#include <cmath>
#include <random>
#include <vector>

#include "llmpack/checksum.h"
#include "llmpack/manifest.h"
#include "llmpack/package_layout.h"
#include "llmpack/status_macros.h"
#include "llmpack/tensor_file.h"

namespace llmpack::testing {

ModelConfig TinyConfig() {
  ModelConfig c;
  c.family = "llama";
  c.architecture = "LlamaForCausalLM";
  c.hidden_size = 32;
  c.num_layers = 3;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 8;
  c.ffn_size = 44;
  c.vocab_size = 97;
  c.max_positions = 256;
  c.bos_id = 1;
  c.eos_ids = {2};
  return c;
}

absl::Status WriteTestPackage(const std::filesystem::path& dir,
                              const ModelConfig& config, DType dtype,
                              uint32_t seed) {
  std::filesystem::create_directories(dir);
  std::mt19937 rng(seed);
  Manifest manifest;
  manifest.tool_version = "test";
  manifest.source.format = "synthetic";
  manifest.config = config;
  manifest.weights_dtype = DTypeName(dtype);
  for (const ExpectedFile& file : ExpectedPackageFiles(config)) {
    std::vector<TensorSpec> specs;
    for (const ExpectedTensor& t : file.tensors) {
      specs.push_back(
          {t.name, dtype, t.shape, FloatTensorBytes(dtype, t.shape)});
    }
    const std::filesystem::path path = dir / file.file_name;
    ASSIGN_OR_RETURN(
        auto writer,
        TensorFileWriter::Create(path, file.kind, file.block_index, specs));
    for (const ExpectedTensor& t : file.tensors) {
      int64_t n = 1;
      for (int64_t d : t.shape) n *= d;
      std::vector<float> values(static_cast<size_t>(n));
      if (t.shape.size() == 1 && t.name.find("bias") == std::string::npos) {
        std::uniform_real_distribution<float> near_one(0.8f, 1.2f);
        for (float& v : values) v = near_one(rng);
      } else {
        const float bound = 1.0f / std::sqrt(float(t.shape.back()));
        std::uniform_real_distribution<float> dist(-bound, bound);
        for (float& v : values) v = dist(rng);
      }
      std::vector<uint8_t> bytes(values.size() * DTypeSize(dtype));
      RETURN_IF_ERROR(ConvertElements(DType::kF32, values.data(), dtype,
                                      bytes.data(), values.size()));
      RETURN_IF_ERROR(writer->Append(bytes));
    }
    ASSIGN_OR_RETURN(uint64_t size, writer->Finish());
    ASSIGN_OR_RETURN(uint64_t sum, ChecksumFile(path));
    const char* role = file.kind == format::FileKind::kEmbedding ? "embedding"
                       : file.kind == format::FileKind::kBlock   ? "block"
                                                                 : "lm";
    manifest.files.push_back({file.file_name, role, size, sum});
  }
  return WriteManifest(dir, manifest);
}

}  // namespace llmpack::testing
