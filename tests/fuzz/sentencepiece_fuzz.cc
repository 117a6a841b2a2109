// sentencepiece tokenizer.model protobuf
// (tokenizer::SpecFromSentencePieceModel), then encode/decode.
#include <cstddef>
#include <cstdint>

#include "fuzz/fuzz_util.h"
#include "fuzz/tokenizer_exercise.h"
#include "tokenizer/convert_tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace llmpack;
  auto spec = tokenizer::SpecFromSentencePieceModel(fuzz::AsText(data, size),
                                                    "tokenizer.model");
  if (!spec.ok()) return 0;
  fuzz::ExerciseTokenizer(*std::move(spec), "tokenizer.model");
  return 0;
}
