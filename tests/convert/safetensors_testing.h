// Test-only safetensors helpers, written independently of the library's
// reader so round-trip tests do not check the converter against itself.
#ifndef LLMPACK_TESTS_CONVERT_SAFETENSORS_TESTING_H_
#define LLMPACK_TESTS_CONVERT_SAFETENSORS_TESTING_H_

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace llmpack::testing {

struct RawTensor {
  std::string dtype;  // "BF16", "F16", "F32"
  std::vector<int64_t> shape;
  std::string bytes;
};

// All tensors of a checkpoint folder (single file or sharded).
std::map<std::string, RawTensor> ReadCheckpointTensors(
    const std::filesystem::path& dir);

// Writes a safetensors file from the given tensors.
void WriteSafetensors(const std::filesystem::path& path,
                      const std::map<std::string, RawTensor>& tensors);

// Copies a fixture checkpoint folder to `dst` (writable copy).
void CopyCheckpoint(const std::filesystem::path& src,
                    const std::filesystem::path& dst);

}  // namespace llmpack::testing

#endif  // LLMPACK_TESTS_CONVERT_SAFETENSORS_TESTING_H_
