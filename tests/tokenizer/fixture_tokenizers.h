// Fixture tokenizers (../shared/fixtures/tokenizers/*) converted into a
// test's scratch directory, shared by the tokenizer test files.
#ifndef LLMPACK_TESTS_TOKENIZER_FIXTURE_TOKENIZERS_H_
#define LLMPACK_TESTS_TOKENIZER_FIXTURE_TOKENIZERS_H_

#include <filesystem>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "support/test_paths.h"
#include "tokenizer/convert_tokenizer.h"
#include "tokenizer/tokenizer.h"

namespace llmpack::tokenizer {

// fixtures/tokenizers/`source_name` converted to `dir`/tokenizer.txt.
inline absl::Status ConvertFixtureTokenizer(const std::string& source_name,
                                            const std::filesystem::path& dir) {
  return ConvertTokenizerFile(
      ::llmpack::testing::FixturesDir() / "tokenizers" / source_name,
      dir / "tokenizer.txt");
}

// ConvertFixtureTokenizer, then the converted file loaded.
inline absl::StatusOr<std::unique_ptr<Tokenizer>> LoadFixtureTokenizer(
    const std::string& source_name, const std::filesystem::path& dir) {
  if (absl::Status s = ConvertFixtureTokenizer(source_name, dir); !s.ok()) {
    return s;
  }
  return Tokenizer::Load(dir / "tokenizer.txt");
}

// The small byte-level BPE fixture most unit tests use.
inline constexpr char kBpe4k[] = "bpe4k_tokenizer.json";

}  // namespace llmpack::tokenizer

#endif  // LLMPACK_TESTS_TOKENIZER_FIXTURE_TOKENIZERS_H_
