// The JSON report of llmverify (fields documented in docs/llmverify.md),
// built from the structured results of verify/checks.h and
// verify/diagnose.h, and the run metrics (throughput, memory, loader
// counters). Thread safety: pure functions, except that CollectMetrics reads
// the model's loader counters.
#ifndef LLMPACK_VERIFY_REPORT_H_
#define LLMPACK_VERIFY_REPORT_H_

#include <cstdint>
#include <optional>
#include <string>

#include "nlohmann/json.hpp"
#include "runtime/generate.h"
#include "runtime/model.h"
#include "verify/checks.h"
#include "verify/diagnose.h"

namespace llmpack::verify {

nlohmann::json ReferenceJson(const ReferenceResult& result,
                             const std::string& path,
                             const std::string& format);
nlohmann::json PerplexityJson(const PerplexityCheck& check,
                              const std::string& path, const std::string& kind);
nlohmann::json GatesJson(const Gates& gates);
nlohmann::json DiagnosisJson(const Diagnosis& diagnosis,
                             const std::string& against, int64_t tokens);

struct RunMetrics {
  int64_t prefill_tokens = 0;
  double prefill_seconds = 0;
  std::optional<double> prefill_tokens_per_second;  // none without prefill
  int64_t decode_tokens = 0;
  double decode_seconds = 0;
  std::optional<double> decode_tokens_per_second;
  std::optional<double> time_to_first_token_ms;
  uint64_t peak_rss_bytes = 0;
  uint64_t block_bytes_read = 0;
  uint64_t blocks_loaded = 0;
  uint64_t prefetched_block_loads = 0;
  uint64_t sync_block_loads = 0;
  int max_resident_blocks = 0;
  double prefetch_wait_ms = 0;
  uint64_t embedding_bytes_read = 0;
  uint64_t lm_bytes = 0;
  uint64_t kv_cache_bytes = 0;
  double wall_seconds = 0;
};

// `ttft_ns`: the prefill time of the prompt that generation started from,
// or -1 to use the run's first prefill.
RunMetrics CollectMetrics(runtime::Model& model, const runtime::RunStats& stats,
                          int64_t ttft_ns, double wall_seconds);
nlohmann::json MetricsJson(const RunMetrics& metrics);

// Peak resident set size of this process (VmHWM of /proc/self/status), 0 if
// unknown.
uint64_t PeakRssBytes();

}  // namespace llmpack::verify

#endif  // LLMPACK_VERIFY_REPORT_H_
