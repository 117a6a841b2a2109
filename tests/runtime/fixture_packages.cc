#include "runtime/fixture_packages.h"

#include <map>

#include "convert/hf_convert.h"
#include "gtest/gtest.h"
#include "support/test_paths.h"

namespace llmpack::testing {

namespace {

// Converts `hf_dir` into <temp>/<name> on first use.
std::filesystem::path ConvertOnce(const std::filesystem::path& hf_dir,
                                  const std::string& name) {
  // Removed when the test program exits.
  static ScopedTempDir dir;
  static std::map<std::string, std::filesystem::path> packages;
  auto it = packages.find(name);
  if (it != packages.end()) return it->second;
  convert::WritePackageOptions options;
  options.output_dir = dir.path() / name;
  auto manifest = convert::ConvertHuggingFace(hf_dir, options);
  EXPECT_TRUE(manifest.ok()) << manifest.status();
  packages[name] = options.output_dir;
  return options.output_dir;
}

}  // namespace

std::filesystem::path FixturePackages::Get(const std::string& model) {
  return ConvertOnce(FixturesDir() / model / "hf", model);
}

std::filesystem::path FixturePackages::Bundled(const std::string& model) {
  return ConvertOnce(TestdataDir() / model / "hf", "bundled-" + model);
}

}  // namespace llmpack::testing
