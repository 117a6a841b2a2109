// The Hugging Face fixture checkpoints under ../shared/fixtures, as the
// parameters of value-parameterized tests that run once per model.
#ifndef LLMPACK_TESTS_SUPPORT_FIXTURE_MODELS_H_
#define LLMPACK_TESTS_SUPPORT_FIXTURE_MODELS_H_

#include <algorithm>
#include <string>

#include "gtest/gtest.h"

namespace llmpack::testing {

// Every fixture model with an hf/ checkpoint and a reference.json.
inline auto FixtureModels() {
  return ::testing::Values("tiny-llama", "tiny-qwen3", "stories260K",
                           "trained-llama");
}

// The test name suffix of a model: "tiny-llama" -> "tiny_llama" (gtest
// names allow only letters, digits and underscores).
inline std::string FixtureModelTestName(
    const ::testing::TestParamInfo<std::string>& info) {
  std::string n = info.param;
  std::replace(n.begin(), n.end(), '-', '_');
  return n;
}

}  // namespace llmpack::testing

#endif  // LLMPACK_TESTS_SUPPORT_FIXTURE_MODELS_H_
