// An ONNX ModelProto loaded for weight import: the parsed graph, every
// constant (initializers and Constant nodes) by value name, and the bytes of
// each constant, including tensors stored as external data (memory-mapped,
// every location/offset/length checked against the model's folder and the
// file size before use). Immutable after Load(); const methods may be called
// from several threads.
#ifndef LLMPACK_ONNX_IMPORT_ONNX_MODEL_H_
#define LLMPACK_ONNX_IMPORT_ONNX_MODEL_H_

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "llmpack/mapped_file.h"
#include "onnx/onnx_pb.h"

namespace llmpack::onnx_import {

// The bytes of one constant tensor, little-endian, row-major.
struct ConstantData {
  int32_t onnx_type = 0;  // onnx::TensorProto::DataType
  std::vector<int64_t> dims;
  absl::Span<const uint8_t> bytes;
  // Set when the bytes had to be assembled (typed fields such as
  // float_data) instead of pointing into the model or a mapped file.
  std::shared_ptr<const std::vector<uint8_t>> owned;

  int64_t num_elements() const;
};

// "FLOAT", "FLOAT16", ... for error messages.
std::string OnnxTypeName(int32_t onnx_type);
// Bytes per element of a fixed-size ONNX type; 0 for others (STRING, 4-bit).
size_t OnnxTypeSize(int32_t onnx_type);

class OnnxModel {
 public:
  // Parses `path` (refusing truncated files and files beyond protobuf's
  // 2 GiB limit) and validates every constant's size and external data.
  static absl::StatusOr<std::unique_ptr<OnnxModel>> Load(
      const std::filesystem::path& path);

  const std::filesystem::path& path() const { return path_; }
  const onnx::GraphProto& graph() const { return model_.graph(); }

  // The constant named `value` (an initializer, or a Constant node's
  // output), or nullptr.
  const onnx::TensorProto* FindConstant(const std::string& value) const;
  // The constant's bytes; sizes were checked at load time.
  absl::StatusOr<ConstantData> Data(const std::string& value) const;
  // Small integer / float constants (shapes, axes, epsilon) as doubles or
  // int64s; errors name the value when it is not a numeric constant.
  absl::StatusOr<std::vector<int64_t>> IntValues(
      const std::string& value) const;
  absl::StatusOr<std::vector<double>> FloatValues(
      const std::string& value) const;

  // Tells the kernel a constant's external pages are no longer needed.
  void ReleasePages(const std::string& value) const;

  // External data files, relative to the model's folder, sorted.
  std::vector<std::string> ExternalFiles() const;
  // Total bytes of all constants, for progress reporting.
  uint64_t ConstantBytes() const { return constant_bytes_; }

 private:
  struct External {
    const MappedFile* file = nullptr;
    uint64_t offset = 0;
    uint64_t length = 0;
  };
  OnnxModel() = default;
  absl::Status IndexConstants();
  absl::Status ResolveExternal(const onnx::TensorProto& tensor);

  std::filesystem::path path_;
  onnx::ModelProto model_;
  std::map<std::string, const onnx::TensorProto*> constants_;
  // Tensors synthesized from Constant nodes' value_float(s)/value_int(s).
  std::vector<std::unique_ptr<onnx::TensorProto>> synthesized_;
  std::map<std::string, std::unique_ptr<MappedFile>> external_files_;
  std::map<const onnx::TensorProto*, External> external_;
  uint64_t constant_bytes_ = 0;
};

}  // namespace llmpack::onnx_import

#endif  // LLMPACK_ONNX_IMPORT_ONNX_MODEL_H_
