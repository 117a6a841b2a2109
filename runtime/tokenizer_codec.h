// TextCodec over the project's tokenizer (lib/tokenizer), kept in its own
// target (llmpack_runtime_text) so the runtime itself does not depend on the
// tokenizer. Not thread-safe (holds one streaming decoder).
#ifndef LLMPACK_RUNTIME_TOKENIZER_CODEC_H_
#define LLMPACK_RUNTIME_TOKENIZER_CODEC_H_

#include <filesystem>
#include <memory>

#include "absl/status/statusor.h"
#include "runtime/text_codec.h"

namespace llmpack::runtime {

// The codec of a package's tokenizer.txt, or null when the package has none.
absl::StatusOr<std::unique_ptr<TextCodec>> LoadPackageCodec(
    const std::filesystem::path& package_dir);

}  // namespace llmpack::runtime

#endif  // LLMPACK_RUNTIME_TOKENIZER_CODEC_H_
