// The checks behind llmverify, as library calls on an open model: logits
// parity and greedy continuations against a reference bundle, perplexity
// against an expected value, and recording a new reference bundle. Each
// returns a structured result; the JSON report (verify/report.h) and the
// console text (lib/commands) are made from these.
// Thread safety: each call uses the model from the calling thread only (the
// model's own thread pool does the parallel work).
#ifndef LLMPACK_VERIFY_CHECKS_H_
#define LLMPACK_VERIFY_CHECKS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/generate.h"
#include "runtime/model.h"
#include "verify/eval.h"
#include "verify/reference.h"

namespace llmpack::verify {

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

// Below this top-1/top-2 margin a greedy step is not reproducible across
// correct f32 runtimes; recorded continuations stop there (as the fixtures'
// do).
inline constexpr double kGreedyStopMargin = 1e-3;

struct ReferenceCaseResult {
  std::string name;
  std::vector<int32_t> input_ids;
  int64_t top_k = 0;  // of the reference logits (0: full rows)
  LogitsComparison comparison;
  int64_t greedy_reference_tokens = 0;
  int64_t greedy_matched_tokens = 0;
  bool greedy_match = false;
  std::vector<std::string> failures;  // "nmse", "top1", "max_abs_error", ...
  bool passed() const { return failures.empty(); }
};

struct ReferenceResult {
  std::vector<ReferenceCaseResult> cases;
  bool passed = true;
};

// Runs every case of `bundle` and applies the parity gates.
absl::StatusOr<ReferenceResult> CheckReference(runtime::Model& model,
                                               const ReferenceBundle& bundle,
                                               const Gates& gates,
                                               runtime::RunStats* stats);

struct PerplexityCheck {
  PerplexityResult result;
  // --expected-ppl, else the eval file's value when every window was scored.
  std::optional<double> expected;
  std::optional<double> relative_error;
  bool passed = true;
};

absl::StatusOr<PerplexityCheck> CheckPerplexity(runtime::Model& model,
                                                const EvalSet& set,
                                                int64_t max_windows,
                                                const Gates& gates,
                                                runtime::RunStats* stats);

struct RecordOptions {
  bool all_positions = true;   // false: the last position only
  int64_t top_k = 0;           // 0: full logits rows
  int64_t greedy_tokens = 32;  // greedy continuation length per input
};

struct NamedInput {
  std::string name;
  std::vector<int32_t> ids;
};

// Runs each input and records its logits and greedy continuation (stopping
// before a step whose margin is below kGreedyStopMargin). `bundle.info` is
// left for the caller (provenance).
absl::StatusOr<ReferenceBundle> RecordReference(
    runtime::Model& model, const std::vector<NamedInput>& inputs,
    const RecordOptions& options, runtime::RunStats* stats);

// InvalidArgument naming `what` when an id is outside the vocabulary.
absl::Status CheckTokenIds(const runtime::Model& model,
                           const std::vector<int32_t>& ids,
                           const std::string& what);

}  // namespace llmpack::verify

#endif  // LLMPACK_VERIFY_CHECKS_H_
