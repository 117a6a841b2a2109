// Reader for the safetensors format: an 8-byte little-endian header length,
// a JSON header {name: {dtype, shape, data_offsets}}, then raw tensor bytes.
// The file is memory-mapped; every size and offset in the header is checked
// against the file before it is used. Const methods are thread-safe.
#ifndef LLMPACK_CONVERT_SAFETENSORS_H_
#define LLMPACK_CONVERT_SAFETENSORS_H_

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "llmpack/dtype.h"
#include "llmpack/mapped_file.h"

namespace llmpack::convert {

struct SafetensorsTensor {
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // absolute offset in the file
  uint64_t size = 0;   // bytes
};

class SafetensorsFile {
 public:
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(
      const std::filesystem::path& path);

  const std::map<std::string, SafetensorsTensor>& tensors() const {
    return tensors_;
  }
  absl::Span<const uint8_t> Data(const SafetensorsTensor& tensor) const {
    return {file_.data() + tensor.begin, tensor.size};
  }
  // Drops the mapped pages of a tensor once it has been consumed.
  void Release(const SafetensorsTensor& tensor) const {
    file_.ReleasePages(tensor.begin, tensor.size);
  }
  // Drops the pages of bytes [offset, offset + length) of a tensor.
  void ReleaseRange(const SafetensorsTensor& tensor, uint64_t offset,
                    uint64_t length) const {
    file_.ReleasePages(tensor.begin + offset, length);
  }
  const std::filesystem::path& path() const { return file_.path(); }

 private:
  MappedFile file_;
  std::map<std::string, SafetensorsTensor> tensors_;
};

}  // namespace llmpack::convert

#endif  // LLMPACK_CONVERT_SAFETENSORS_H_
