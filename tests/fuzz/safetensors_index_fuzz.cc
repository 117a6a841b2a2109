// model.safetensors.index.json of a sharded checkpoint
// (convert::HuggingFaceCheckpoint::Open) beside two small valid shards.
#include <cstddef>
#include <cstdint>
#include <string>

#include "convert/hf_convert.h"
#include "fuzz/fuzz_util.h"

namespace {

// A safetensors file holding one f32 [2, 2] tensor named `name`.
std::string Shard(const std::string& name) {
  const std::string header = "{\"" + name +
                             "\":{\"dtype\":\"F32\",\"shape\":[2,2],"
                             "\"data_offsets\":[0,16]}}";
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i)
    out[i] = static_cast<char>(header.size() >> (8 * i));
  return out + header + std::string(16, '\1');
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace llmpack;
  static const bool shards_written = [] {
    fuzz::WriteTemp("model-00001-of-00002.safetensors",
                    Shard("model.embed_tokens.weight"));
    fuzz::WriteTemp("model-00002-of-00002.safetensors",
                    Shard("lm_head.weight"));
    return true;
  }();
  (void)shards_written;
  fuzz::WriteTemp("model.safetensors.index.json", fuzz::AsText(data, size));
  auto checkpoint = convert::HuggingFaceCheckpoint::Open(fuzz::TempDir());
  if (!checkpoint.ok()) return 0;
  (void)(*checkpoint)->WeightFiles();
  (void)(*checkpoint)->MainDType();
  for (const char* name : {"model.embed_tokens.weight", "lm_head.weight"}) {
    auto tensor = (*checkpoint)->Get(name);
    (void)tensor;
  }
  return 0;
}
