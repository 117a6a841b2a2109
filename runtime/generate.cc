#include "runtime/generate.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "llmpack/status_macros.h"
#include "runtime/clock.h"

namespace llmpack::runtime {

absl::Status Prefill(Session& session, absl::Span<const int32_t> tokens,
                     LogitsRows rows, std::vector<float>* logits,
                     RunStats* stats) {
  const int64_t start = NowNs();
  RETURN_IF_ERROR(session.Forward(tokens, rows, logits));
  const int64_t elapsed = NowNs() - start;
  stats->prefill_tokens += static_cast<int64_t>(tokens.size());
  stats->prefill_ns += elapsed;
  if (stats->first_prefill_ns < 0) stats->first_prefill_ns = elapsed;
  stats->max_kv_cache_bytes =
      std::max(stats->max_kv_cache_bytes, session.kv_cache_bytes());
  return absl::OkStatus();
}

absl::Status DecodeStep(Session& session, int32_t token,
                        std::vector<float>* logits, RunStats* stats) {
  const int64_t start = NowNs();
  const int32_t one[1] = {token};
  RETURN_IF_ERROR(session.Forward(one, LogitsRows::kLast, logits));
  stats->decode_tokens += 1;
  stats->decode_ns += NowNs() - start;
  return absl::OkStatus();
}

int32_t Argmax(absl::Span<const float> logits) {
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) -
                              logits.begin());
}

double Top2Margin(absl::Span<const float> logits) {
  float first = -INFINITY, second = -INFINITY;
  for (float x : logits) {
    if (x > first) {
      second = first;
      first = x;
    } else if (x > second) {
      second = x;
    }
  }
  return static_cast<double>(first) - second;
}

int32_t Sampler::Sample(absl::Span<const float> logits) {
  if (options_.temperature <= 0) return Argmax(logits);
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  size_t keep = order.size();
  if (options_.top_k > 0) keep = std::min<size_t>(keep, options_.top_k);
  std::partial_sort(order.begin(), order.begin() + keep, order.end(),
                    [&](int32_t a, int32_t b) {
                      return logits[a] > logits[b] ||
                             (logits[a] == logits[b] && a < b);
                    });
  order.resize(keep);
  std::vector<double> p(keep);
  const double max = logits[order[0]];
  double sum = 0;
  for (size_t i = 0; i < keep; ++i) {
    p[i] = std::exp((logits[order[i]] - max) / options_.temperature);
    sum += p[i];
  }
  // Nucleus: the smallest prefix (by probability) holding top_p of the mass.
  double mass = 0;
  size_t nucleus = keep;
  for (size_t i = 0; i < keep; ++i) {
    mass += p[i] / sum;
    if (mass >= options_.top_p) {
      nucleus = i + 1;
      break;
    }
  }
  double total = 0;
  for (size_t i = 0; i < nucleus; ++i) total += p[i];
  // 53 random bits -> uniform in [0, 1).
  const double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53 * total;
  double acc = 0;
  for (size_t i = 0; i < nucleus; ++i) {
    acc += p[i];
    if (u < acc) return order[i];
  }
  return order[nucleus - 1];
}

absl::StatusOr<GenerateResult> Generate(Session& session,
                                        absl::Span<const int32_t> prompt,
                                        const GenerateOptions& options,
                                        const TokenCallback& on_token,
                                        RunStats* stats) {
  GenerateResult result;
  std::vector<float> logits;
  const int64_t prefill_before = stats->prefill_ns;
  RETURN_IF_ERROR(Prefill(session, prompt, LogitsRows::kLast, &logits, stats));
  result.prefill_ns = stats->prefill_ns - prefill_before;
  Sampler sampler(options.sampling);
  const std::vector<int64_t>& stop = options.stop_ids;
  for (int64_t i = 0; i < options.max_new_tokens; ++i) {
    const int32_t token = sampler.Sample(logits);
    result.tokens.push_back(token);
    if (on_token) on_token(token);
    if (std::find(stop.begin(), stop.end(), token) != stop.end()) {
      result.stop_reason = StopReason::kStopId;
      break;
    }
    // The last token is not fed back: nothing would read its logits.
    if (i + 1 < options.max_new_tokens) {
      RETURN_IF_ERROR(DecodeStep(session, token, &logits, stats));
    }
  }
  return result;
}

absl::StatusOr<GreedyResult> GreedyContinue(
    Session& session, std::vector<float> logits, int64_t max_tokens,
    double stop_margin, const std::vector<int32_t>* expected, RunStats* stats) {
  GreedyResult result;
  result.min_margin = INFINITY;
  for (int64_t i = 0; i < max_tokens; ++i) {
    const double margin = Top2Margin(logits);
    if (stop_margin > 0 && margin < stop_margin) break;
    result.min_margin = std::min(result.min_margin, margin);
    const int32_t token = Argmax(logits);
    result.tokens.push_back(token);
    if (expected != nullptr && (static_cast<size_t>(i) >= expected->size() ||
                                (*expected)[i] != token)) {
      break;
    }
    if (i + 1 < max_tokens) {
      RETURN_IF_ERROR(DecodeStep(session, token, &logits, stats));
    }
  }
  return result;
}

}  // namespace llmpack::runtime
