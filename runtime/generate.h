// Prefill/decode helpers with timing, sampling (greedy and seeded
// temperature/top-k/top-p), generation that stops at stop ids, and greedy
// continuations.
// Thread safety: a Sampler is not thread-safe; the functions use the
// session given to them from the calling thread only.
#ifndef LLMPACK_RUNTIME_GENERATE_H_
#define LLMPACK_RUNTIME_GENERATE_H_

#include <cstdint>
#include <functional>
#include <random>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "runtime/model.h"

namespace llmpack::runtime {

// Throughput counters of a run (all durations in nanoseconds).
struct RunStats {
  int64_t prefill_tokens = 0;
  int64_t prefill_ns = 0;
  int64_t decode_tokens = 0;
  int64_t decode_ns = 0;
  int64_t first_prefill_ns = -1;  // time to first token of the first prompt
  uint64_t max_kv_cache_bytes = 0;
};

// Runs a prompt (or any batch) through the session and times it as prefill.
absl::Status Prefill(Session& session, absl::Span<const int32_t> tokens,
                     LogitsRows rows, std::vector<float>* logits,
                     RunStats* stats);
// Feeds one token and returns the next logits row, timed as decode.
absl::Status DecodeStep(Session& session, int32_t token,
                        std::vector<float>* logits, RunStats* stats);

// Index of the largest logit (the first one on ties, like torch.argmax).
int32_t Argmax(absl::Span<const float> logits);
// Largest minus second largest logit.
double Top2Margin(absl::Span<const float> logits);

struct SamplingOptions {
  double temperature = 0;  // <= 0: greedy
  int64_t top_k = 0;       // 0: no limit
  double top_p = 1.0;      // nucleus mass kept
  uint64_t seed = 0;
};

// Draws tokens reproducibly: the same seed and logits give the same tokens
// on every platform (own uniform draw from mt19937_64, no std:: distribution).
class Sampler {
 public:
  explicit Sampler(const SamplingOptions& options)
      : options_(options), rng_(options.seed) {}
  int32_t Sample(absl::Span<const float> logits);

 private:
  SamplingOptions options_;
  std::mt19937_64 rng_;
};

struct GenerateOptions {
  int64_t max_new_tokens = 32;
  SamplingOptions sampling;
  // Generation ends after producing one of these (the package's eos/stop
  // ids); empty: only max_new_tokens ends it.
  std::vector<int64_t> stop_ids;
};

enum class StopReason { kMaxTokens, kStopId };

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated, a stop id included
  StopReason stop_reason = StopReason::kMaxTokens;
  int64_t prefill_ns = 0;  // the prompt's prefill: time to first token
};

// Called with each generated token as soon as it is sampled (streaming).
using TokenCallback = std::function<void(int32_t token)>;

// Prefills `prompt` at the session's position, then samples up to
// options.max_new_tokens tokens, feeding each back, and stops after a stop
// id. The session needs room for prompt + max_new_tokens tokens.
absl::StatusOr<GenerateResult> Generate(Session& session,
                                        absl::Span<const int32_t> prompt,
                                        const GenerateOptions& options,
                                        const TokenCallback& on_token,
                                        RunStats* stats);

struct GreedyResult {
  std::vector<int32_t> tokens;
  double min_margin = 0;  // smallest top-1/top-2 margin over the steps taken
};

// Repeated argmax starting from `logits` (the last prompt position's row),
// at most `max_tokens` tokens; stops before a step whose top-1/top-2 margin
// is below `stop_margin` (0: never), and after a token that differs from
// `expected` (if given), since later steps would compare different inputs.
absl::StatusOr<GreedyResult> GreedyContinue(
    Session& session, std::vector<float> logits, int64_t max_tokens,
    double stop_margin, const std::vector<int32_t>* expected, RunStats* stats);

}  // namespace llmpack::runtime

#endif  // LLMPACK_RUNTIME_GENERATE_H_
