// What `llmverify` does, as a library call: open a package, run any of
// reference parity, perplexity, generation and reference saving, apply the
// gates, diagnose failures block by block, and report everything (human
// text on `out`, the JSON report documented in docs/llmverify.md).
// Single-threaded entry point (the model uses its own thread pool).
#ifndef LLMPACK_RUNTIME_VERIFY_H_
#define LLMPACK_RUNTIME_VERIFY_H_

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
#include "runtime/text_codec.h"

namespace llmpack::runtime {

// Pass/fail thresholds. Defaults are strict enough for an unquantized
// package (f32 runtime vs an f32 reference of the same weights).
struct Gates {
  double max_nmse = 1e-8;
  double min_top1 = 1.0;        // fraction of rows with the same argmax
  double max_abs_error = 1e-3;  // logits
  bool require_greedy_match = true;
  double ppl_rel_tolerance = 1e-4;     // |ppl - expected| / expected
  std::optional<double> expected_ppl;  // overrides the eval file's fp32_ppl
  std::optional<double> max_ppl;
};

struct VerifyOptions {
  std::filesystem::path package;
  ModelOptions model;
  std::optional<std::filesystem::path> reference;
  std::optional<std::filesystem::path> eval;
  int64_t eval_window = 256;     // tokens per window for id/text files
  int64_t eval_max_windows = 0;  // 0: all
  std::optional<std::string> prompt_text;
  std::optional<std::vector<int32_t>> prompt_ids;
  int64_t max_new_tokens = 32;
  SamplingOptions sampling;
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
  Gates gates;
  std::optional<std::filesystem::path> json_out;
  TextCodec* codec = nullptr;   // tokenizer, when available
  std::ostream* out = nullptr;  // human-readable output (may be null)
  bool quiet = false;           // only generated text on `out`
};

struct VerifyOutcome {
  nlohmann::json report;
  bool passed = false;
};

absl::StatusOr<VerifyOutcome> RunVerify(const VerifyOptions& options);

// Peak resident set size of this process (VmHWM), 0 if unknown.
uint64_t PeakRssBytes();

}  // namespace llmpack::runtime

#endif  // LLMPACK_RUNTIME_VERIFY_H_
