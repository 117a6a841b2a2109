// Reader for NumPy .npy files holding little-endian float32 arrays in C order
// (format version 1.0/2.0), the format of the fixtures' reference logits.
// Thread-safe: pure functions.
#ifndef LLMPACK_VERIFY_NPY_H_
#define LLMPACK_VERIFY_NPY_H_

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace llmpack::verify {

struct NpyArray {
  std::vector<int64_t> shape;
  std::vector<float> data;  // row-major, product(shape) elements
};

// Parses .npy bytes; `context` names the source in errors.
absl::StatusOr<NpyArray> ParseNpy(const std::string& bytes,
                                  const std::string& context);
absl::StatusOr<NpyArray> ReadNpy(const std::filesystem::path& path);

}  // namespace llmpack::verify

#endif  // LLMPACK_VERIFY_NPY_H_
