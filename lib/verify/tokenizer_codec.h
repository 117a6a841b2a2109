// TextCodec over a package's tokenizer.txt (llmpack::tokenizer::Tokenizer),
// used by llmverify to encode --prompt/--chat text and text eval files and to
// stream generated text. The verifier sits above both the runtime and the
// tokenizer, so this adapter needs no upward include. Not thread-safe (one
// stream per codec).
#ifndef LLMPACK_VERIFY_TOKENIZER_CODEC_H_
#define LLMPACK_VERIFY_TOKENIZER_CODEC_H_

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tokenizer/tokenizer.h"
#include "verify/text_codec.h"

namespace llmpack::verify {

class TokenizerTextCodec : public TextCodec {
 public:
  // Loads package_dir/tokenizer.txt (NotFound when the package has none).
  static absl::StatusOr<std::unique_ptr<TokenizerTextCodec>> Load(
      const std::filesystem::path& package_dir);

  absl::StatusOr<std::vector<int32_t>> Encode(const std::string& text,
                                              bool add_special) override;
  std::string Push(int32_t id) override { return stream_.Push(id); }
  std::string Flush() override { return stream_.Flush(); }
  const tokenizer::Tokenizer& tokenizer() const { return *tokenizer_; }

 private:
  explicit TokenizerTextCodec(std::unique_ptr<tokenizer::Tokenizer> t)
      : tokenizer_(std::move(t)), stream_(*tokenizer_) {}
  std::unique_ptr<tokenizer::Tokenizer> tokenizer_;  // owned; outlives stream_
  tokenizer::StreamingDecoder stream_;
};

}  // namespace llmpack::verify

#endif  // LLMPACK_VERIFY_TOKENIZER_CODEC_H_
