// Hugging Face config.json (convert::ParseHuggingFaceConfig).
#include <cstddef>
#include <cstdint>

#include "convert/hf_config.h"
#include "fuzz/fuzz_util.h"
#include "llmpack/json_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace llmpack;
  auto json = ParseJson(fuzz::AsText(data, size), "config.json");
  if (!json.ok()) return 0;
  (void)convert::DeclaredDType(*json);
  auto config = convert::ParseHuggingFaceConfig(*json, "config.json");
  (void)config;
  return 0;
}
