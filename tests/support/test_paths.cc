#include "support/test_paths.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <string>

namespace llmpack::testing {

std::filesystem::path FixturesDir() {
  return std::filesystem::path(LLMPACK_SHARED_DIR) / "fixtures";
}
std::filesystem::path CorpusDir() {
  return std::filesystem::path(LLMPACK_SHARED_DIR) / "corpus";
}
std::filesystem::path TestdataDir() { return LLMPACK_TESTDATA_DIR; }
std::filesystem::path BinaryDir() { return LLMPACK_BINARY_DIR; }

bool FixturesAvailable() {
  std::error_code ec;
  return std::filesystem::is_directory(FixturesDir(), ec);
}

ScopedTempDir::ScopedTempDir() {
  static std::atomic<int> counter{0};
  const char* base = std::getenv("TMPDIR");
  std::filesystem::path root = base ? base : "/tmp";
  path_ = root / ("llmpack_test_" + std::to_string(::getpid()) + "_" +
                  std::to_string(counter++));
  std::filesystem::remove_all(path_);
  std::filesystem::create_directories(path_);
}

ScopedTempDir::~ScopedTempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

}  // namespace llmpack::testing
