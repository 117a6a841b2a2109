// Converts an ONNX export of a decoder-only transformer into an llmpack
// package: roles recovered from the graph (graph_analysis.h), configuration
// from a config.json beside the model or inferred from the graph, weights
// streamed in Hugging Face layout through WritePackage. Not thread-safe.
#ifndef LLMPACK_ONNX_IMPORT_ONNX_CONVERT_H_
#define LLMPACK_ONNX_IMPORT_ONNX_CONVERT_H_

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "convert/package_writer.h"
#include "llmpack/manifest.h"
#include "llmpack/model_config.h"
#include "nlohmann/json.hpp"
#include "onnx_import/graph_analysis.h"
#include "onnx_import/onnx_model.h"
#include "quant/codec.h"

namespace llmpack::onnx_import {

// The recovered weights by Hugging Face name, read from the ONNX constants
// (transposed into [out, in] where the graph stores [in, out]). Pages of
// external data are released after each tensor. Holds a reference to the
// model, which must outlive it.
class OnnxTensorSource : public convert::TensorSource {
 public:
  OnnxTensorSource(const OnnxModel& model, const RecoveredModel& recovered);

  absl::StatusOr<convert::SourceTensor> Get(
      const std::string& hf_name) override;
  void Release(const std::string& hf_name) override;
  uint64_t TotalBytes() const override { return total_bytes_; }

  // Refuses weights whose ONNX dtype is not FLOAT, FLOAT16 or BFLOAT16
  // (or malformed MatMulNBits blocks), naming the tensor and its role.
  // Returns the source dtype label: the dtype most weights have, or
  // "int4"/"int8" for MatMulNBits models.
  absl::StatusOr<std::string> CheckDTypes() const;
  bool HasQuantizedWeights() const;
  // Decides for every MatMulNBits weight whether Get() hands it over as a
  // q4 tensor (codes, scales and zero points repacked, not dequantized; see
  // MapNBitsToQ4) or dequantized to f32, and returns the decisions for the
  // manifest ("onnx_import" extension, docs/onnx_import.md): per tensor the
  // q4 format, or the reason it was dequantized. When an output dtype is
  // requested every weight is dequantized (and converted to it by the
  // writer). Without a call, every weight is dequantized.
  absl::StatusOr<nlohmann::json> PlanNBits(std::optional<DType> output_dtype);

 private:
  // The whole constant in Hugging Face layout (dequantized, transposed).
  absl::StatusOr<convert::SourceTensor> ReadWhole(
      const WeightRef& ref, const std::string& label) const;

  const OnnxModel& model_;
  std::map<std::string, WeightRef> weights_;  // by Hugging Face name
  // MatMulNBits weights kept as q4, by Hugging Face name.
  std::map<std::string, quant::QuantFormat> kept_q4_;
  uint64_t total_bytes_ = 0;
};

// An ONNX model opened for conversion: everything ConvertOnnx writes,
// before writing it.
struct OnnxImport {
  std::unique_ptr<OnnxModel> model;
  RecoveredModel recovered;
  ModelConfig config;
  SourceInfo source;
  std::vector<std::filesystem::path> tokenizer_files;
  bool quantized = false;  // has MatMulNBits weights
};

// Loads and analyses `model_path`. With a config.json in the model's folder
// the configuration comes from it (and must agree with the graph);
// otherwise it is inferred from the graph and config.inferred_fields lists
// what was inferred.
absl::StatusOr<OnnxImport> OpenOnnx(const std::filesystem::path& model_path);

// Full conversion of `model_path` (a .onnx file; external data beside it).
// Keeps the ONNX weights' dtype unless options.output_dtype is set. Without
// it, MatMulNBits weights that map onto q4 are written as q4 unchanged and
// the others are dequantized to f32 (the manifest's "onnx_import" extension
// says which and why); with it, every weight is dequantized and converted.
// Converts the tokenizer files in the model's folder, if any, into
// tokenizer.txt.
absl::StatusOr<Manifest> ConvertOnnx(const std::filesystem::path& model_path,
                                     convert::WritePackageOptions options);

}  // namespace llmpack::onnx_import

#endif  // LLMPACK_ONNX_IMPORT_ONNX_CONVERT_H_
