// Perplexity evaluation inputs and the evaluation itself.
// Thread safety: single-threaded use of the model passed in.
#ifndef LLMPACK_VERIFY_EVAL_H_
#define LLMPACK_VERIFY_EVAL_H_

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/generate.h"
#include "runtime/model.h"
#include "verify/text_codec.h"

namespace llmpack::verify {

struct EvalSet {
  // "windows-json" (a JSON object with "windows" or "sequences"),
  // "token-ids" (whitespace/comma separated ids) or "text".
  std::string kind;
  // Each window is scored on its own: logits at positions 0..n-2 predict
  // tokens 1..n-1 (a window that starts with BOS never scores BOS).
  std::vector<std::vector<int32_t>> windows;
  // "fp32_ppl" of a windows JSON file, when present.
  std::optional<double> expected_perplexity;
};

struct EvalInputOptions {
  // Token-id and text files are cut into windows of this many tokens, each
  // preceded by BOS when the model adds one.
  int64_t window_tokens = 256;
  std::optional<int32_t> bos_id;  // prepended when set
  TextCodec* codec = nullptr;     // needed for text files
};

absl::StatusOr<EvalSet> LoadEvalSet(const std::filesystem::path& path,
                                    const EvalInputOptions& options);

struct PerplexityResult {
  int64_t windows = 0;
  int64_t predicted_tokens = 0;
  double mean_nll = 0;  // natural log
  double perplexity = 0;
};

// Scores every window (at most `max_windows`, 0 = all) with one prefill each.
absl::StatusOr<PerplexityResult> EvaluatePerplexity(runtime::Model& model,
                                                    const EvalSet& set,
                                                    int64_t max_windows,
                                                    runtime::RunStats* stats);

}  // namespace llmpack::verify

#endif  // LLMPACK_VERIFY_EVAL_H_
