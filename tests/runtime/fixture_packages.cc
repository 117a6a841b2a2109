#include "runtime/fixture_packages.h"

#include <map>

#include "convert/hf_convert.h"
#include "gtest/gtest.h"
#include "support/test_paths.h"

namespace llmpack::testing {

std::filesystem::path FixturePackages::Get(const std::string& model) {
  // Removed when the test program exits.
  static ScopedTempDir dir;
  static std::map<std::string, std::filesystem::path> packages;
  auto it = packages.find(model);
  if (it != packages.end()) return it->second;
  WritePackageOptions options;
  options.output_dir = dir.path() / model;
  auto manifest = ConvertHuggingFace(FixturesDir() / model / "hf", options);
  EXPECT_TRUE(manifest.ok()) << manifest.status();
  packages[model] = options.output_dir;
  return options.output_dir;
}

}  // namespace llmpack::testing
