// The verifier's view of a tokenizer: text to ids and streaming ids to text.
// Perplexity on text files, text prompts and streamed output use it; tests
// can substitute their own. TokenizerTextCodec (verify/tokenizer_codec.h)
// implements it with a package's tokenizer.txt. Implementations need not be
// thread-safe.
#ifndef LLMPACK_VERIFY_TEXT_CODEC_H_
#define LLMPACK_VERIFY_TEXT_CODEC_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace llmpack::verify {

class TextCodec {
 public:
  virtual ~TextCodec() = default;
  // `add_special`: apply the tokenizer's post-processor (e.g. add BOS).
  virtual absl::StatusOr<std::vector<int32_t>> Encode(const std::string& text,
                                                      bool add_special) = 0;
  // Streaming decode: the text completed by this token (possibly empty while
  // a multi-byte character is incomplete).
  virtual std::string Push(int32_t id) = 0;
  // Whatever text is still pending at the end of the stream.
  virtual std::string Flush() = 0;
};

}  // namespace llmpack::verify

#endif  // LLMPACK_VERIFY_TEXT_CODEC_H_
