// Inputs found by the fuzzers in tests/fuzz (safetensors_fuzz,
// hf_config_fuzz) that broke the converter's readers, kept as regression
// tests.
#include <cstdint>
#include <string>

#include "convert/hf_config.h"
#include "convert/safetensors.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "llmpack/file_util.h"
#include "support/test_paths.h"

namespace llmpack::convert {
namespace {

using ::llmpack::testing::ScopedTempDir;
using ::testing::HasSubstr;

std::string SafetensorsWithHeader(const std::string& header) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) {
    out[i] = static_cast<char>(static_cast<uint64_t>(header.size()) >> (8 * i));
  }
  return out + header + std::string(4, '\0');
}

// A float where an integer belongs converted with undefined behaviour
// (UBSan: 1e+300 is outside the range of representable values of type
// 'long'); a negative offset wrapped to a huge one.
TEST(ConvertFuzzFindingsTest, SafetensorsNonIntegerShapeOrOffsetIsAnError) {
  ScopedTempDir dir;
  const auto path = dir.path() / "model.safetensors";
  for (const char* entry :
       {R"({"a":{"dtype":"F32","shape":[1e300],"data_offsets":[0,4]}})",
        R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4.5e19]}})",
        R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})"}) {
    ASSERT_TRUE(WriteStringToFile(path, SafetensorsWithHeader(entry)).ok());
    auto file = SafetensorsFile::Open(path);
    ASSERT_FALSE(file.ok()) << entry;
    EXPECT_THAT(std::string(file.status().message()),
                HasSubstr("model.safetensors: tensor a: "))
        << entry;
  }
}

TEST(ConvertFuzzFindingsTest, ConfigWithFloatSizeIsAnError) {
  const nlohmann::json config = {{"architectures", {"LlamaForCausalLM"}},
                                 {"hidden_size", 1e300},
                                 {"num_hidden_layers", 1},
                                 {"num_attention_heads", 1},
                                 {"intermediate_size", 8},
                                 {"vocab_size", 8}};
  auto c = ParseHuggingFaceConfig(config, "config.json");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()),
              HasSubstr("expected an integer, found number"));
}

}  // namespace
}  // namespace llmpack::convert
