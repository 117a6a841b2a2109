// Locations of fixtures and scratch space for tests.
#ifndef LLMPACK_TESTS_SUPPORT_TEST_PATHS_H_
#define LLMPACK_TESTS_SUPPORT_TEST_PATHS_H_

#include <filesystem>
#include <string>

#include "gtest/gtest.h"

// Defined to 1 when the tests are built with AddressSanitizer (gcc defines
// __SANITIZE_ADDRESS__, clang answers __has_feature): memory-bound tests skip
// then, since shadow memory and the quarantine inflate RSS and address space.
#if defined(__SANITIZE_ADDRESS__)
#define LLMPACK_TESTS_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LLMPACK_TESTS_UNDER_ASAN 1
#endif
#endif

namespace llmpack::testing {

// ../shared/fixtures as configured at build time (may not exist).
std::filesystem::path FixturesDir();
// ../shared/corpus.
std::filesystem::path CorpusDir();
// The project's own testdata/ folder.
std::filesystem::path TestdataDir();
// The build tree (tools are at <build>/tools/<name>).
std::filesystem::path BinaryDir();
bool FixturesAvailable();

// A fresh, empty directory removed when the object goes out of scope.
class ScopedTempDir {
 public:
  ScopedTempDir();
  ~ScopedTempDir();
  ScopedTempDir(const ScopedTempDir&) = delete;
  ScopedTempDir& operator=(const ScopedTempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace llmpack::testing

// Skips the current test, loudly, when ../shared/fixtures is missing.
#define LLMPACK_REQUIRE_FIXTURES()                                         \
  do {                                                                     \
    if (!::llmpack::testing::FixturesAvailable()) {                        \
      GTEST_SKIP() << "SKIPPED LOUDLY: reference fixtures not found at "   \
                   << ::llmpack::testing::FixturesDir()                    \
                   << " (expected ../shared/fixtures beside the project)"; \
    }                                                                      \
  } while (0)

#endif  // LLMPACK_TESTS_SUPPORT_TEST_PATHS_H_
