#include "verify/tokenizer_codec.h"

#include "absl/strings/str_cat.h"
#include "llmpack/package_layout.h"
#include "llmpack/status_macros.h"

namespace llmpack::verify {

absl::StatusOr<std::unique_ptr<TokenizerTextCodec>> TokenizerTextCodec::Load(
    const std::filesystem::path& package_dir) {
  const std::filesystem::path txt = package_dir / kTokenizerFile;
  std::error_code ec;
  if (!std::filesystem::exists(txt, ec)) {
    return absl::NotFoundError(
        absl::StrCat(txt.string(), ": no tokenizer in package"));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<tokenizer::Tokenizer> t,
                   tokenizer::Tokenizer::Load(txt));
  return std::unique_ptr<TokenizerTextCodec>(
      new TokenizerTextCodec(std::move(t)));
}

absl::StatusOr<std::vector<int32_t>> TokenizerTextCodec::Encode(
    const std::string& text, bool add_special) {
  return tokenizer_->Encode(text, add_special);
}

}  // namespace llmpack::verify
