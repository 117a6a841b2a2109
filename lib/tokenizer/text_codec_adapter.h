// Adapts llmpack::tok::Tokenizer to the runtime's TextCodec interface
// (runtime/text_codec.h) so that llmverify can encode --prompt text and
// stream generated text. Header-only so the tokenizer library does not link
// against the runtime. Not thread-safe (one stream per codec).
#ifndef LLMPACK_TOKENIZER_TEXT_CODEC_ADAPTER_H_
#define LLMPACK_TOKENIZER_TEXT_CODEC_ADAPTER_H_

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/text_codec.h"
#include "tokenizer/tokenizer.h"

namespace llmpack::tok {

class TokenizerTextCodec : public llmpack::runtime::TextCodec {
 public:
  // Loads package_dir/tokenizer.txt (NotFound when the package has none).
  static absl::StatusOr<std::unique_ptr<TokenizerTextCodec>> Load(
      const std::filesystem::path& package_dir) {
    const std::filesystem::path txt = package_dir / "tokenizer.txt";
    std::error_code ec;
    if (!std::filesystem::exists(txt, ec)) {
      return absl::NotFoundError(txt.string() + ": no tokenizer in package");
    }
    absl::StatusOr<std::unique_ptr<Tokenizer>> t = Tokenizer::Load(txt);
    if (!t.ok()) return t.status();
    return std::unique_ptr<TokenizerTextCodec>(
        new TokenizerTextCodec(*std::move(t)));
  }

  absl::StatusOr<std::vector<int32_t>> Encode(const std::string& text,
                                              bool add_special) override {
    return tokenizer_->Encode(text, add_special);
  }
  std::string Push(int32_t id) override { return stream_.Push(id); }
  std::string Flush() override { return stream_.Flush(); }
  const Tokenizer& tokenizer() const { return *tokenizer_; }

 private:
  explicit TokenizerTextCodec(std::unique_ptr<Tokenizer> t)
      : tokenizer_(std::move(t)), stream_(*tokenizer_) {}
  std::unique_ptr<Tokenizer> tokenizer_;
  StreamingDecoder stream_;
};

}  // namespace llmpack::tok

#endif  // LLMPACK_TOKENIZER_TEXT_CODEC_ADAPTER_H_
