// Hugging Face tokenizer.json (tokenizer::SpecFromHfTokenizerJson), then the
// tokenizer built from it encodes and decodes a fixed text.
#include <cstddef>
#include <cstdint>

#include "fuzz/fuzz_util.h"
#include "fuzz/tokenizer_exercise.h"
#include "llmpack/json_file.h"
#include "tokenizer/convert_tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace llmpack;
  auto json = ParseJson(fuzz::AsText(data, size), "tokenizer.json");
  if (!json.ok()) return 0;
  auto spec = tokenizer::SpecFromHfTokenizerJson(*json, "tokenizer.json");
  if (!spec.ok()) return 0;
  fuzz::ExerciseTokenizer(*std::move(spec), "tokenizer.json");
  return 0;
}
