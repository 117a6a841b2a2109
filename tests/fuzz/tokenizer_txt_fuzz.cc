// The package's tokenizer.txt (tokenizer::ParseTokenizerSpec); a spec that
// parses must serialize and parse again to the same text, then encode/decode.
#include <cstddef>
#include <cstdint>

#include "fuzz/fuzz_util.h"
#include "fuzz/tokenizer_exercise.h"
#include "tokenizer/tokenizer_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace llmpack;
  auto spec =
      tokenizer::ParseTokenizerSpec(fuzz::AsText(data, size), "tokenizer.txt");
  if (!spec.ok()) return 0;
  const std::string text = tokenizer::SerializeTokenizerSpec(*spec);
  auto again = tokenizer::ParseTokenizerSpec(text, "reserialized");
  fuzz::Check(again.ok(), "a parsed tokenizer.txt serializes to a valid one");
  fuzz::Check(tokenizer::SerializeTokenizerSpec(*again) == text,
              "tokenizer.txt round trip is stable");
  fuzz::ExerciseTokenizer(*std::move(spec), "tokenizer.txt");
  return 0;
}
