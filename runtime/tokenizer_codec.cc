#include "runtime/tokenizer_codec.h"

#include "llmpack/package_layout.h"
#include "llmpack/status_macros.h"
#include "tokenizer/tokenizer.h"

namespace llmpack::runtime {
namespace {

class TokenizerCodec : public TextCodec {
 public:
  explicit TokenizerCodec(std::unique_ptr<tok::Tokenizer> tokenizer)
      : tokenizer_(std::move(tokenizer)), decoder_(*tokenizer_) {}

  absl::StatusOr<std::vector<int32_t>> Encode(const std::string& text,
                                              bool add_special) override {
    return tokenizer_->Encode(text, add_special);
  }
  std::string Push(int32_t id) override { return decoder_.Push(id); }
  std::string Flush() override { return decoder_.Flush(); }

 private:
  std::unique_ptr<tok::Tokenizer> tokenizer_;
  tok::StreamingDecoder decoder_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<TextCodec>> LoadPackageCodec(
    const std::filesystem::path& package_dir) {
  const std::filesystem::path file = package_dir / kTokenizerFile;
  if (!std::filesystem::exists(file)) return std::unique_ptr<TextCodec>();
  ASSIGN_OR_RETURN(std::unique_ptr<tok::Tokenizer> tokenizer,
                   tok::Tokenizer::Load(file));
  return std::unique_ptr<TextCodec>(
      std::make_unique<TokenizerCodec>(std::move(tokenizer)));
}

}  // namespace llmpack::runtime
