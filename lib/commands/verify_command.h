// What `llmverify` does, as one library call: open a package, run any of
// reference parity, perplexity, generation (from a prompt or a chat message
// rendered with the package's chat template) and reference recording, apply
// the gates, diagnose failures block by block, and report: console text on
// `out` and the JSON report of docs/llmverify.md. The checks themselves are
// in lib/verify; this file sequences them and formats their results.
// Single-threaded entry point (the model uses its own thread pool).
#ifndef LLMPACK_COMMANDS_VERIFY_COMMAND_H_
#define LLMPACK_COMMANDS_VERIFY_COMMAND_H_

#include <cstdint>
#include <filesystem>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "runtime/generate.h"
#include "runtime/model.h"
#include "verify/against.h"
#include "verify/checks.h"
#include "verify/text_codec.h"

namespace llmpack::commands {

struct VerifyRequest {
  std::filesystem::path package;
  runtime::ModelOptions model;
  std::optional<std::filesystem::path> reference;
  std::optional<std::filesystem::path> eval;
  int64_t eval_window = 256;     // tokens per window for id/text files
  int64_t eval_max_windows = 0;  // 0: all
  // Generation input: at most one of prompt_text, prompt_ids, chat_message.
  std::optional<std::string> prompt_text;
  std::optional<std::vector<int32_t>> prompt_ids;
  // --chat: rendered with the package's chat template (after the optional
  // system message) plus the generation prompt.
  std::optional<std::string> chat_message;
  std::optional<std::string> system_message;  // only with chat_message
  int64_t max_new_tokens = 32;
  runtime::SamplingOptions sampling;
  bool stop_at_eos = true;
  // --save-reference
  std::optional<std::filesystem::path> save_reference;
  bool save_all_positions = true;  // false: last position only
  int64_t save_top_k = 0;          // 0: full logits rows
  int64_t save_greedy_tokens = 32;
  int64_t save_max_windows = 4;  // eval windows turned into cases
  // Diagnosis.
  std::optional<std::filesystem::path> diagnose_against;
  bool diagnose_resident = false;
  bool diagnose_always = false;  // even when every gate passes
  verify::Gates gates;
  // --against: run this package too on the eval windows and reference
  // prompts and compare it with `package` (no generation, saving or
  // diagnosis then); its own gates.
  std::optional<std::filesystem::path> against;
  verify::AgainstGates against_gates;
  std::optional<std::filesystem::path> json_out;
  // Text codec for prompts, text eval files and streamed output. Null: the
  // package's tokenizer.txt when it has one. Not owned.
  verify::TextCodec* codec = nullptr;
  std::ostream* out = nullptr;  // human-readable output (may be null)
  bool quiet = false;           // only generated text on `out`
};

struct VerifyOutcome {
  nlohmann::json report;
  bool passed = false;
};

absl::StatusOr<VerifyOutcome> RunVerify(const VerifyRequest& request);

// The --against path of RunVerify (request.against set): compares the two
// packages, prints a summary on `out`, writes the JSON report ("against"
// object) and applies the against gates.
absl::StatusOr<VerifyOutcome> RunAgainst(const VerifyRequest& request);

}  // namespace llmpack::commands

#endif  // LLMPACK_COMMANDS_VERIFY_COMMAND_H_
