// Writes small synthetic packages (random weights) with the core writer, so
// runtime tests need neither the converter nor the fixtures.
#ifndef LLMPACK_TESTS_RUNTIME_TEST_PACKAGE_H_
#define LLMPACK_TESTS_RUNTIME_TEST_PACKAGE_H_

#include <cstdint>
#include <filesystem>

#include "absl/status/status.h"
#include "llmpack/dtype.h"
#include "llmpack/model_config.h"

namespace llmpack::testing {

// A tiny llama-style config: hidden 32, 3 layers, 4 heads, 2 kv heads.
ModelConfig TinyConfig();

// Weights uniform in +-1/sqrt(fan_in), norm weights near 1, all in `dtype`.
absl::Status WriteTestPackage(const std::filesystem::path& dir,
                              const ModelConfig& config, DType dtype,
                              uint32_t seed);

}  // namespace llmpack::testing

#endif  // LLMPACK_TESTS_RUNTIME_TEST_PACKAGE_H_
