// Inputs that crashed the core readers, kept as regression tests: found by
// the fuzzers in tests/fuzz (manifest_fuzz) or while writing them.
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "llmpack/manifest.h"

namespace llmpack {
namespace {

using ::testing::HasSubstr;

// manifest_fuzz: a manifest without "config" threw json::out_of_range out of
// ManifestFromJson (std::terminate).
TEST(CoreFuzzFindingsTest, ManifestWithoutConfigIsAnError) {
  nlohmann::json j = ManifestToJson(Manifest{});
  j.erase("config");
  auto m = ManifestFromJson(j, "manifest.json");
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(std::string(m.status().message()),
              HasSubstr("manifest.json: malformed manifest: no 'config'"));
}

// A float where an integer belongs converted with undefined behaviour
// (UBSan: outside the range of representable values).
TEST(CoreFuzzFindingsTest, ManifestFloatSizesAreErrors) {
  Manifest m;
  m.files = {{"lm.bin", "lm", 10, 1}};
  nlohmann::json j = ManifestToJson(m);
  j["files"][0]["size"] = 1e300;
  auto bad_size = ManifestFromJson(j, "manifest.json");
  ASSERT_FALSE(bad_size.ok());
  EXPECT_THAT(std::string(bad_size.status().message()),
              HasSubstr("must be a non-negative integer, found 1e+300"));

  j = ManifestToJson(m);
  j["config"]["vocab_size"] = -1e300;
  auto bad_config = ManifestFromJson(j, "manifest.json");
  ASSERT_FALSE(bad_config.ok());
  EXPECT_THAT(std::string(bad_config.status().message()),
              HasSubstr("manifest.json: bad model config"));
}

}  // namespace
}  // namespace llmpack
