// Checkpoints converted once per test program (in-process
// ConvertHuggingFace into a temporary directory): the shared fixtures and
// the project's own bundled testdata/.
#ifndef LLMPACK_TESTS_RUNTIME_FIXTURE_PACKAGES_H_
#define LLMPACK_TESTS_RUNTIME_FIXTURE_PACKAGES_H_

#include <filesystem>
#include <string>

namespace llmpack::testing {

class FixturePackages {
 public:
  // The package of ../shared/fixtures/<model>/hf (converted on first use).
  static std::filesystem::path Get(const std::string& model);
  // The package of testdata/<model>/hf, bundled with the project (never
  // skipped: it needs no ../shared).
  static std::filesystem::path Bundled(const std::string& model);
};

}  // namespace llmpack::testing

#endif  // LLMPACK_TESTS_RUNTIME_FIXTURE_PACKAGES_H_
