#include "verify/report.h"

#include <fstream>
#include <vector>

namespace llmpack::verify {
namespace {

using nlohmann::json;

json OptionalJson(const std::optional<double>& value) {
  return value.has_value() ? json(*value) : json(nullptr);
}

}  // namespace

json ReferenceJson(const ReferenceResult& result, const std::string& path,
                   const std::string& format) {
  json cases = json::array();
  for (const ReferenceCaseResult& c : result.cases) {
    const LogitsComparison& cmp = c.comparison;
    json jc = {{"name", c.name},
               {"input_tokens", c.input_ids.size()},
               {"rows", cmp.rows},
               {"top_k", c.top_k},
               {"max_abs_error", cmp.max_abs_error},
               {"nmse", cmp.nmse},
               {"min_cosine", cmp.min_cosine},
               {"top1_agreement", cmp.top1_agreement},
               {"greedy_reference_tokens", c.greedy_reference_tokens},
               {"greedy_matched_tokens", c.greedy_matched_tokens},
               {"greedy_match", c.greedy_match},
               {"failures", c.failures},
               {"passed", c.passed()}};
    if (c.top_k > 0) jc["max_logsumexp_error"] = cmp.max_logsumexp_error;
    cases.push_back(jc);
  }
  return {{"path", path},
          {"format", format},
          {"cases", cases},
          {"passed", result.passed}};
}

json PerplexityJson(const PerplexityCheck& check, const std::string& path,
                    const std::string& kind) {
  const PerplexityResult& r = check.result;
  json je = {{"path", path},           {"kind", kind},
             {"windows", r.windows},   {"predicted_tokens", r.predicted_tokens},
             {"mean_nll", r.mean_nll}, {"perplexity", r.perplexity},
             {"passed", check.passed}};
  if (check.expected.has_value()) {
    je["expected_perplexity"] = *check.expected;
    je["relative_error"] = *check.relative_error;
  }
  return je;
}

json GatesJson(const Gates& g) {
  return {{"max_nmse", g.max_nmse},
          {"min_top1", g.min_top1},
          {"max_abs_error", g.max_abs_error},
          {"require_greedy_match", g.require_greedy_match},
          {"ppl_rel_tolerance", g.ppl_rel_tolerance},
          {"expected_ppl", OptionalJson(g.expected_ppl)},
          {"max_ppl", OptionalJson(g.max_ppl)}};
}

json DiagnosisJson(const Diagnosis& d, const std::string& against,
                   int64_t tokens) {
  json blocks = json::array();
  for (const BlockDivergence& b : d.blocks) {
    blocks.push_back({{"layer", b.layer},
                      {"nmse", b.nmse},
                      {"max_abs_error", b.max_abs_error}});
  }
  return {{"against", against},
          {"tokens", tokens},
          {"threshold", d.threshold},
          {"first_divergent_layer", d.first_divergent_layer >= 0
                                        ? json(d.first_divergent_layer)
                                        : json(nullptr)},
          {"blocks", blocks}};
}

RunMetrics CollectMetrics(runtime::Model& model, const runtime::RunStats& s,
                          int64_t ttft_ns, double wall_seconds) {
  auto rate = [](int64_t tokens, int64_t ns) -> std::optional<double> {
    if (ns <= 0) return std::nullopt;
    return tokens / (ns * 1e-9);
  };
  if (ttft_ns < 0) ttft_ns = s.first_prefill_ns;
  const runtime::LoaderStats l = model.loader().stats();
  RunMetrics m;
  m.prefill_tokens = s.prefill_tokens;
  m.prefill_seconds = s.prefill_ns * 1e-9;
  m.prefill_tokens_per_second = rate(s.prefill_tokens, s.prefill_ns);
  m.decode_tokens = s.decode_tokens;
  m.decode_seconds = s.decode_ns * 1e-9;
  m.decode_tokens_per_second = rate(s.decode_tokens, s.decode_ns);
  if (ttft_ns >= 0) m.time_to_first_token_ms = ttft_ns * 1e-6;
  m.peak_rss_bytes = PeakRssBytes();
  m.block_bytes_read = l.bytes_read;
  m.blocks_loaded = l.blocks_loaded;
  m.prefetched_block_loads = l.prefetched_loads;
  m.sync_block_loads = l.sync_loads;
  m.max_resident_blocks = l.max_resident_blocks;
  m.prefetch_wait_ms = l.wait_ns * 1e-6;
  m.embedding_bytes_read = model.embedding_bytes_read();
  m.lm_bytes = model.lm_bytes();
  m.kv_cache_bytes = s.max_kv_cache_bytes;
  m.wall_seconds = wall_seconds;
  return m;
}

json MetricsJson(const RunMetrics& m) {
  return {
      {"prefill_tokens", m.prefill_tokens},
      {"prefill_seconds", m.prefill_seconds},
      {"prefill_tokens_per_second", OptionalJson(m.prefill_tokens_per_second)},
      {"decode_tokens", m.decode_tokens},
      {"decode_seconds", m.decode_seconds},
      {"decode_tokens_per_second", OptionalJson(m.decode_tokens_per_second)},
      {"time_to_first_token_ms", OptionalJson(m.time_to_first_token_ms)},
      {"peak_rss_bytes", m.peak_rss_bytes},
      {"block_bytes_read", m.block_bytes_read},
      {"blocks_loaded", m.blocks_loaded},
      {"prefetched_block_loads", m.prefetched_block_loads},
      {"sync_block_loads", m.sync_block_loads},
      {"max_resident_blocks", m.max_resident_blocks},
      {"prefetch_wait_ms", m.prefetch_wait_ms},
      {"embedding_bytes_read", m.embedding_bytes_read},
      {"lm_bytes", m.lm_bytes},
      {"kv_cache_bytes", m.kv_cache_bytes},
      {"wall_seconds", m.wall_seconds},
  };
}

uint64_t PeakRssBytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) {
      return std::stoull(line.substr(6)) * 1024;  // reported in kB
    }
  }
  return 0;
}

}  // namespace llmpack::verify
