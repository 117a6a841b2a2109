// Builds a runtime tokenizer from a parsed spec and runs it over a fixed text
// with special tokens, bytes outside ASCII and digits (tokenizer fuzzers).
#ifndef LLMPACK_TESTS_FUZZ_TOKENIZER_EXERCISE_H_
#define LLMPACK_TESTS_FUZZ_TOKENIZER_EXERCISE_H_

#include <string>
#include <utility>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_file.h"

namespace llmpack::fuzz {

inline void ExerciseTokenizer(tokenizer::TokenizerSpec spec,
                              const std::string& context) {
  auto tok = tokenizer::Tokenizer::FromSpec(std::move(spec), context);
  if (!tok.ok()) return;
  static const char kText[] =
      "<|im_start|>user\nHello,  world! 1234 caf\xc3\xa9 \xe2\x80\x87\t\r\n"
      "<s></s> \xf0\x9f\x98\x80 don't\xff";
  for (bool add_special : {false, true}) {
    // A pre-tokenizer regex over its match limit is an error, not a crash.
    absl::StatusOr<std::vector<int32_t>> ids =
        (*tok)->Encode(kText, add_special);
    if (!ids.ok()) continue;
    auto text = (*tok)->Decode(*ids);
    Check(text.ok(), "ids from Encode decode");
  }
}

}  // namespace llmpack::fuzz

#endif  // LLMPACK_TESTS_FUZZ_TOKENIZER_EXERCISE_H_
