#include "runtime/test_package.h"

#include <algorithm>
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

void QuantizeRowNearest(const quant::RowLayout& layout, const float* values,
                        uint8_t* row) {
  const int code_min = layout.CodeMin();
  const int code_max = layout.CodeMax();
  std::vector<int> codes(static_cast<size_t>(layout.cols));
  std::vector<float> scales(static_cast<size_t>(layout.groups));
  std::vector<int> zeros(static_cast<size_t>(layout.groups));
  for (int64_t g = 0; g < layout.groups; ++g) {
    const int64_t begin = g * layout.format.group_size;
    const int64_t end = begin + layout.GroupLength(g);
    float lo = values[begin], hi = values[begin];
    for (int64_t c = begin; c < end; ++c) {
      lo = std::min(lo, values[c]);
      hi = std::max(hi, values[c]);
    }
    float scale;
    int zero;
    if (layout.format.zero_point) {
      scale = (hi - lo) / static_cast<float>(code_max - code_min);
      scale = quant::RoundScale(layout, scale > 0 ? scale : 1.0f);
      zero = std::clamp(static_cast<int>(std::lrint(code_min - lo / scale)),
                        code_min, code_max);
    } else {
      zero = layout.ImplicitZero();
      const float amax = std::max(std::abs(lo), std::abs(hi));
      // The code range is asymmetric around the zero (q4 -8..7, q8
      // -128..127): map max |x| onto the shorter side.
      scale = amax / static_cast<float>(code_max - zero);
      scale = quant::RoundScale(layout, scale > 0 ? scale : 1.0f);
    }
    scales[g] = scale;
    zeros[g] = zero;
    for (int64_t c = begin; c < end; ++c) {
      codes[c] =
          std::clamp(static_cast<int>(std::lrint(values[c] / scale)) + zero,
                     code_min, code_max);
    }
  }
  quant::PackRow(layout, codes, scales, zeros, row);
}

absl::Status QuantizeTestPackage(const std::filesystem::path& src,
                                 const std::filesystem::path& dst,
                                 const TestQuantization& quantization) {
  std::filesystem::create_directories(dst);
  ASSIGN_OR_RETURN(Manifest manifest, ReadManifest(src));
  const quant::QuantFormat& format = quantization.linear;
  for (ManifestFile& file : manifest.files) {
    const bool tensors =
        file.role == "embedding" || file.role == "block" || file.role == "lm";
    if (!tensors) {
      std::filesystem::copy_file(
          src / file.name, dst / file.name,
          std::filesystem::copy_options::overwrite_existing);
      continue;
    }
    ASSIGN_OR_RETURN(TensorFileReader reader,
                     TensorFileReader::Open(src / file.name));
    auto selected = [&](const TensorInfo& t) {
      if (t.shape.size() != 2) return false;
      return reader.kind() != format::FileKind::kEmbedding ||
             quantization.embedding;
    };
    std::vector<TensorSpec> specs;
    for (const TensorInfo& t : reader.tensors()) {
      TensorSpec spec{t.name, t.dtype, t.shape, t.size_bytes};
      if (selected(t)) {
        ASSIGN_OR_RETURN(quant::RowLayout layout,
                         quant::MakeRowLayout(format, t.shape[1]));
        spec.dtype = format.dtype;
        spec.size_bytes = static_cast<uint64_t>(t.shape[0] * layout.row_bytes);
        spec.group_size = static_cast<uint32_t>(format.group_size);
        spec.scale_dtype = static_cast<uint16_t>(format.scale_dtype);
        spec.quant_flags = format.zero_point ? format::kQuantFlagZeroPoint : 0;
      }
      specs.push_back(spec);
    }
    ASSIGN_OR_RETURN(auto writer,
                     TensorFileWriter::Create(dst / file.name, reader.kind(),
                                              reader.block_index(), specs));
    for (const TensorInfo& t : reader.tensors()) {
      std::vector<uint8_t> bytes(t.size_bytes);
      RETURN_IF_ERROR(reader.ReadTensor(t, absl::MakeSpan(bytes), true));
      if (selected(t)) {
        std::vector<float> values(static_cast<size_t>(t.num_elements()));
        ToF32(t.dtype, bytes.data(), values.data(), values.size());
        ASSIGN_OR_RETURN(quant::RowLayout layout,
                         quant::MakeRowLayout(format, t.shape[1]));
        bytes.assign(static_cast<size_t>(t.shape[0] * layout.row_bytes), 0);
        for (int64_t r = 0; r < t.shape[0]; ++r) {
          QuantizeRowNearest(layout, values.data() + r * t.shape[1],
                             bytes.data() + r * layout.row_bytes);
        }
      }
      RETURN_IF_ERROR(writer->Append(bytes));
    }
    ASSIGN_OR_RETURN(file.size, writer->Finish());
    ASSIGN_OR_RETURN(file.checksum, ChecksumFile(dst / file.name));
  }
  manifest.weights_dtype = DTypeName(format.dtype);
  return WriteManifest(dst, manifest);
}

}  // namespace llmpack::testing
