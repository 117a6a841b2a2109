// Writes small synthetic packages (random weights) with the core writer, so
// runtime tests need neither the converter nor the fixtures.
#ifndef LLMPACK_TESTS_RUNTIME_TEST_PACKAGE_H_
#define LLMPACK_TESTS_RUNTIME_TEST_PACKAGE_H_

#include <cstdint>
#include <filesystem>

#include "absl/status/status.h"
#include "llmpack/dtype.h"
#include "llmpack/model_config.h"
#include "quant/codec.h"

namespace llmpack::testing {

// A tiny llama-style config: hidden 32, 3 layers, 4 heads, 2 kv heads.
ModelConfig TinyConfig();

// Weights uniform in +-1/sqrt(fan_in), norm weights near 1, all in `dtype`.
absl::Status WriteTestPackage(const std::filesystem::path& dir,
                              const ModelConfig& config, DType dtype,
                              uint32_t seed);

// Round-to-nearest quantization of one row of layout.cols values, packed with
// quant::PackRow: per group, the scale maps max |x| onto the code range
// (symmetric) or [min, max] onto it with a zero point (asymmetric). A simple
// stand-in for llmquant, so runtime tests and benchmarks need no quantizer.
void QuantizeRowNearest(const quant::RowLayout& layout, const float* values,
                        uint8_t* row);

struct TestQuantization {
  quant::QuantFormat linear;  // every block Linear weight and lm_head
  bool embedding = false;     // also quantize embed_tokens (same format)
};

// Copies package `src` to `dst`, rewriting the selected matrices with
// QuantizeRowNearest (other tensors and files unchanged) and updating the
// manifest's file sizes and checksums.
absl::Status QuantizeTestPackage(const std::filesystem::path& src,
                                 const std::filesystem::path& dst,
                                 const TestQuantization& quantization);

}  // namespace llmpack::testing

#endif  // LLMPACK_TESTS_RUNTIME_TEST_PACKAGE_H_
