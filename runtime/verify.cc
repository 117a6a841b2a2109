#include "runtime/verify.h"

#include <chrono>
#include <cmath>
#include <fstream>
#include <numeric>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "llmpack/checksum.h"
#include "llmpack/file_util.h"
#include "llmpack/status_macros.h"
#include "llmpack/version.h"
#include "runtime/diagnose.h"
#include "runtime/eval.h"
#include "runtime/reference.h"

namespace llmpack::runtime {
namespace {

using nlohmann::json;

// Below this top-1/top-2 margin a greedy step is not reproducible across
// correct f32 runtimes; saved continuations stop there (as the fixtures do).
constexpr double kGreedyStopMargin = 1e-3;

struct Context {
  Context(const VerifyOptions& options, Model& m) : o(options), model(m) {}
  const VerifyOptions& o;
  Model& model;
  RunStats stats;
  json report = json::object();
  bool passed = true;
  std::vector<int32_t> diagnosis_tokens;  // input of the first failure
  int64_t generation_ttft_ns = -1;        // the prompt's prefill, if any
  std::ostringstream sink;                // stands in for a null `out`

  std::ostream& out() { return (o.out != nullptr && !o.quiet) ? *o.out : sink; }
  void Fail(const std::vector<int32_t>& tokens) {
    if (passed) diagnosis_tokens = tokens;
    passed = false;
  }
};

// Logits of `input` at `positions`, [positions, vocab].
absl::StatusOr<std::vector<float>> LogitsAt(
    Context& c, Session& session, const std::vector<int32_t>& input,
    const std::vector<int64_t>& positions, std::vector<float>* last_row) {
  const int64_t vocab = c.model.config().vocab_size;
  const int64_t n = static_cast<int64_t>(input.size());
  const bool only_last = positions.size() == 1 && positions[0] == n - 1;
  std::vector<float> all;
  RETURN_IF_ERROR(Prefill(session, input,
                          only_last ? LogitsRows::kLast : LogitsRows::kAll,
                          &all, &c.stats));
  const int64_t first_row = only_last ? n - 1 : 0;
  std::vector<float> rows;
  rows.reserve(positions.size() * vocab);
  for (int64_t p : positions) {
    const float* row = all.data() + (p - first_row) * vocab;
    rows.insert(rows.end(), row, row + vocab);
  }
  last_row->assign(all.end() - vocab, all.end());
  return rows;
}

absl::Status CheckIds(const Context& c, const std::vector<int32_t>& ids,
                      const std::string& what) {
  for (int32_t id : ids) {
    if (id < 0 || id >= c.model.config().vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, ": token id ", id, " outside the package vocabulary [0, ",
          c.model.config().vocab_size, ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status RunReference(Context& c, const ReferenceBundle& bundle) {
  const Gates& g = c.o.gates;
  json cases = json::array();
  bool all_passed = true;
  c.out() << "reference " << c.o.reference->string() << " (" << bundle.format
          << ", " << bundle.cases.size() << " cases)\n";
  for (const ReferenceCase& rc : bundle.cases) {
    RETURN_IF_ERROR(CheckIds(c, rc.input_ids, rc.name));
    if (rc.logits.vocab != c.model.config().vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          rc.name, ": reference vocabulary ", rc.logits.vocab,
          " differs from the package's ", c.model.config().vocab_size));
    }
    const int64_t n = static_cast<int64_t>(rc.input_ids.size());
    Session session(c.model, n + static_cast<int64_t>(rc.greedy.size()) + 1);
    std::vector<float> last;
    ASSIGN_OR_RETURN(
        std::vector<float> rows,
        LogitsAt(c, session, rc.input_ids, rc.logits.positions, &last));
    ASSIGN_OR_RETURN(LogitsComparison cmp, CompareLogits(rows, rc.logits));
    ASSIGN_OR_RETURN(
        GreedyResult greedy,
        GreedyContinue(session, last, static_cast<int64_t>(rc.greedy.size()), 0,
                       &rc.greedy, &c.stats));
    int64_t matched = 0;
    while (matched < static_cast<int64_t>(greedy.tokens.size()) &&
           greedy.tokens[matched] == rc.greedy[matched]) {
      ++matched;
    }
    const bool greedy_match = matched == static_cast<int64_t>(rc.greedy.size());
    std::vector<std::string> failures;
    if (!(cmp.nmse <= g.max_nmse)) failures.push_back("nmse");
    if (!(cmp.top1_agreement >= g.min_top1)) failures.push_back("top1");
    if (!(cmp.max_abs_error <= g.max_abs_error)) {
      failures.push_back("max_abs_error");
    }
    if (g.require_greedy_match && !greedy_match) failures.push_back("greedy");
    const bool ok = failures.empty();
    if (!ok) {
      all_passed = false;
      c.Fail(rc.input_ids);
    }
    json jc = {{"name", rc.name},
               {"input_tokens", n},
               {"rows", cmp.rows},
               {"top_k", rc.logits.top_k},
               {"max_abs_error", cmp.max_abs_error},
               {"nmse", cmp.nmse},
               {"min_cosine", cmp.min_cosine},
               {"top1_agreement", cmp.top1_agreement},
               {"greedy_reference_tokens", rc.greedy.size()},
               {"greedy_matched_tokens", matched},
               {"greedy_match", greedy_match},
               {"failures", failures},
               {"passed", ok}};
    if (rc.logits.top_k > 0) {
      jc["max_logsumexp_error"] = cmp.max_logsumexp_error;
    }
    cases.push_back(jc);
    c.out() << absl::StrFormat(
        "  %s: %d tokens, %d rows  max_abs %.3g  nmse %.3g  cos %.8f  top1 "
        "%.2f%%  greedy %d/%d  %s\n",
        rc.name, n, cmp.rows, cmp.max_abs_error, cmp.nmse, cmp.min_cosine,
        100 * cmp.top1_agreement, matched, rc.greedy.size(),
        ok ? "PASS" : "FAIL");
  }
  c.report["reference"] = {{"path", c.o.reference->string()},
                           {"format", bundle.format},
                           {"cases", cases},
                           {"passed", all_passed}};
  return absl::OkStatus();
}

absl::Status RunEval(Context& c, const EvalSet& set) {
  const Gates& g = c.o.gates;
  ASSIGN_OR_RETURN(
      PerplexityResult r,
      EvaluatePerplexity(c.model, set, c.o.eval_max_windows, &c.stats));
  std::optional<double> expected = g.expected_ppl;
  // A fixture's expected value holds for all of its windows only.
  const bool whole_set = r.windows == static_cast<int64_t>(set.windows.size());
  if (!expected.has_value() && whole_set) expected = set.expected_perplexity;
  json je = {
      {"path", c.o.eval->string()}, {"kind", set.kind},
      {"windows", r.windows},       {"predicted_tokens", r.predicted_tokens},
      {"mean_nll", r.mean_nll},     {"perplexity", r.perplexity}};
  bool ok = true;
  std::string line = absl::StrFormat(
      "eval %s (%s): %d windows, %d predicted tokens, perplexity %.6f",
      c.o.eval->string(), set.kind, r.windows, r.predicted_tokens,
      r.perplexity);
  if (expected.has_value()) {
    const double rel = std::abs(r.perplexity - *expected) / *expected;
    je["expected_perplexity"] = *expected;
    je["relative_error"] = rel;
    ok = ok && rel <= g.ppl_rel_tolerance;
    absl::StrAppendFormat(&line, " (expected %.6f, relative error %.3g)",
                          *expected, rel);
  }
  if (g.max_ppl.has_value()) ok = ok && r.perplexity <= *g.max_ppl;
  je["passed"] = ok;
  if (!ok) {
    std::vector<int32_t> first = set.windows[0];
    first.resize(std::min<size_t>(first.size(), 128));
    c.Fail(first);
  }
  c.out() << line << "  " << (ok ? "PASS" : "FAIL") << "\n";
  c.report["eval"] = je;
  return absl::OkStatus();
}

absl::Status RunGeneration(Context& c) {
  const VerifyOptions& o = c.o;
  std::vector<int32_t> ids;
  if (o.prompt_ids.has_value()) {
    ids = *o.prompt_ids;
  } else {
    if (o.codec == nullptr) {
      return absl::FailedPreconditionError(
          "--prompt needs a tokenizer, but the package has no tokenizer.txt; "
          "use --prompt-ids");
    }
    ASSIGN_OR_RETURN(ids, o.codec->Encode(*o.prompt_text, true));
  }
  if (ids.empty()) return absl::InvalidArgumentError("empty prompt");
  RETURN_IF_ERROR(CheckIds(c, ids, "prompt"));
  const int64_t n = static_cast<int64_t>(ids.size());
  Session session(c.model, n + std::max<int64_t>(o.max_new_tokens, 1));
  std::vector<float> logits;
  const int64_t prefill_before = c.stats.prefill_ns;
  RETURN_IF_ERROR(Prefill(session, ids, LogitsRows::kLast, &logits, &c.stats));
  c.generation_ttft_ns = c.stats.prefill_ns - prefill_before;
  Sampler sampler(o.sampling);
  std::ostream& stream = o.out != nullptr ? *o.out : c.sink;
  if (o.prompt_text.has_value()) stream << *o.prompt_text;
  std::vector<int32_t> generated;
  std::string text;
  std::string stop_reason = "max_tokens";
  const auto& eos = c.model.config().eos_ids;
  for (int64_t i = 0; i < o.max_new_tokens; ++i) {
    const int32_t token = sampler.Sample(logits);
    generated.push_back(token);
    const std::string piece =
        o.codec != nullptr ? o.codec->Push(token) : absl::StrCat(token, " ");
    text += piece;
    stream << piece << std::flush;
    if (o.stop_at_eos &&
        std::find(eos.begin(), eos.end(), token) != eos.end()) {
      stop_reason = "eos";
      break;
    }
    if (i + 1 < o.max_new_tokens) {
      RETURN_IF_ERROR(DecodeStep(session, token, &logits, &c.stats));
    }
  }
  if (o.codec != nullptr) {
    const std::string rest = o.codec->Flush();
    text += rest;
    stream << rest;
  }
  stream << "\n";
  c.report["generation"] = {
      {"prompt_ids", ids},
      {"generated_ids", generated},
      {"text", o.codec != nullptr ? json(text) : json(nullptr)},
      {"stop_reason", stop_reason},
      {"sampling",
       {{"temperature", o.sampling.temperature},
        {"top_k", o.sampling.top_k},
        {"top_p", o.sampling.top_p},
        {"seed", o.sampling.seed}}}};
  return absl::OkStatus();
}

absl::Status SaveReference(Context& c, const ReferenceBundle* from_reference,
                           const EvalSet* from_eval) {
  const VerifyOptions& o = c.o;
  std::vector<std::pair<std::string, std::vector<int32_t>>> inputs;
  if (from_reference != nullptr) {
    for (const ReferenceCase& rc : from_reference->cases) {
      inputs.emplace_back(rc.name, rc.input_ids);
    }
  }
  if (from_eval != nullptr) {
    for (size_t i = 0; i < from_eval->windows.size() &&
                       static_cast<int64_t>(i) < o.save_max_windows;
         ++i) {
      inputs.emplace_back(absl::StrCat("eval window ", i),
                          from_eval->windows[i]);
    }
  }
  if (o.prompt_ids.has_value()) inputs.emplace_back("prompt", *o.prompt_ids);
  if (inputs.empty()) {
    return absl::InvalidArgumentError(
        "--save-reference needs inputs: --reference, --eval or --prompt-ids");
  }
  const Manifest& m = c.model.package().manifest();
  ReferenceBundle bundle;
  bundle.format = kBundleFormat;
  bundle.info = {
      {"package", c.o.package.string()},
      {"tool_version", kToolVersion},
      {"weights_dtype", m.weights_dtype},
      {"family", m.config.family},
      {"source_content_xxh3_64", ChecksumToHex(m.source.content_hash)},
      {"greedy_stop_margin", kGreedyStopMargin}};
  const int64_t vocab = c.model.config().vocab_size;
  for (auto& [name, ids] : inputs) {
    RETURN_IF_ERROR(CheckIds(c, ids, name));
    const int64_t n = static_cast<int64_t>(ids.size());
    std::vector<int64_t> positions;
    if (o.save_all_positions) {
      positions.resize(static_cast<size_t>(n));
      std::iota(positions.begin(), positions.end(), 0);
    } else {
      positions = {n - 1};
    }
    Session session(c.model, n + o.save_greedy_tokens + 1);
    std::vector<float> last;
    ASSIGN_OR_RETURN(std::vector<float> rows,
                     LogitsAt(c, session, ids, positions, &last));
    ReferenceCase rc;
    rc.name = name;
    rc.input_ids = ids;
    if (o.save_top_k > 0) {
      rc.logits = ReduceToTopK(rows, vocab, positions, o.save_top_k);
    } else {
      rc.logits.positions = positions;
      rc.logits.vocab = vocab;
      rc.logits.full = std::move(rows);
    }
    ASSIGN_OR_RETURN(GreedyResult greedy,
                     GreedyContinue(session, last, o.save_greedy_tokens,
                                    kGreedyStopMargin, nullptr, &c.stats));
    rc.greedy = greedy.tokens;
    bundle.cases.push_back(std::move(rc));
  }
  RETURN_IF_ERROR(WriteReferenceBundle(*o.save_reference, bundle));
  const uint64_t bytes = std::filesystem::file_size(*o.save_reference);
  c.report["saved_reference"] = {{"path", o.save_reference->string()},
                                 {"cases", bundle.cases.size()},
                                 {"top_k", o.save_top_k},
                                 {"all_positions", o.save_all_positions},
                                 {"bytes", bytes}};
  c.out() << "saved reference bundle " << o.save_reference->string() << " ("
          << bundle.cases.size() << " cases, " << bytes << " bytes)\n";
  return absl::OkStatus();
}

absl::Status RunDiagnosis(Context& c) {
  const VerifyOptions& o = c.o;
  ModelOptions trusted_options = o.model;
  std::string against;
  std::filesystem::path trusted_path = o.package;
  if (o.diagnose_against.has_value()) {
    trusted_path = *o.diagnose_against;
    against = trusted_path.string();
  } else {
    trusted_options.mode = LoadMode::kResident;
    against = "resident run of the same package";
  }
  ASSIGN_OR_RETURN(auto trusted, Model::Open(trusted_path, trusted_options));
  ASSIGN_OR_RETURN(
      Diagnosis d,
      DiagnoseBlocks(c.model, *trusted, c.diagnosis_tokens, o.gates.max_nmse));
  json blocks = json::array();
  c.out() << "diagnosis against " << against << " ("
          << c.diagnosis_tokens.size() << " tokens):\n";
  for (const BlockDivergence& b : d.blocks) {
    blocks.push_back({{"layer", b.layer},
                      {"nmse", b.nmse},
                      {"max_abs_error", b.max_abs_error}});
    c.out() << absl::StrFormat(
        "  block %d: hidden-state nmse %.3g, max_abs %.3g%s\n", b.layer, b.nmse,
        b.max_abs_error,
        b.layer == d.first_divergent_layer ? "  <- first divergence" : "");
  }
  if (d.first_divergent_layer < 0) {
    c.out() << "  no block exceeds nmse " << d.threshold << "\n";
  }
  c.report["diagnosis"] = {
      {"against", against},
      {"tokens", c.diagnosis_tokens.size()},
      {"threshold", d.threshold},
      {"first_divergent_layer", d.first_divergent_layer >= 0
                                    ? json(d.first_divergent_layer)
                                    : json(nullptr)},
      {"blocks", blocks}};
  return absl::OkStatus();
}

json MetricsJson(Context& c, double wall_seconds) {
  const RunStats& s = c.stats;
  // The generation prompt's prefill when there is one, else the first.
  const int64_t ttft_ns =
      c.generation_ttft_ns >= 0 ? c.generation_ttft_ns : s.first_prefill_ns;
  const LoaderStats l = c.model.loader().stats();
  auto rate = [](int64_t tokens, int64_t ns) {
    return ns > 0 ? json(tokens / (ns * 1e-9)) : json(nullptr);
  };
  return {
      {"prefill_tokens", s.prefill_tokens},
      {"prefill_seconds", s.prefill_ns * 1e-9},
      {"prefill_tokens_per_second", rate(s.prefill_tokens, s.prefill_ns)},
      {"decode_tokens", s.decode_tokens},
      {"decode_seconds", s.decode_ns * 1e-9},
      {"decode_tokens_per_second", rate(s.decode_tokens, s.decode_ns)},
      {"time_to_first_token_ms",
       ttft_ns >= 0 ? json(ttft_ns * 1e-6) : json(nullptr)},
      {"peak_rss_bytes", PeakRssBytes()},
      {"block_bytes_read", l.bytes_read},
      {"blocks_loaded", l.blocks_loaded},
      {"prefetched_block_loads", l.prefetched_loads},
      {"sync_block_loads", l.sync_loads},
      {"max_resident_blocks", l.max_resident_blocks},
      {"prefetch_wait_ms", l.wait_ns * 1e-6},
      {"embedding_bytes_read", c.model.embedding_bytes_read()},
      {"lm_bytes", c.model.lm_bytes()},
      {"kv_cache_bytes", s.max_kv_cache_bytes},
      {"wall_seconds", wall_seconds},
  };
}

void PrintMetrics(Context& c, const json& m) {
  auto num = [&](const char* key) {
    return m[key].is_null() ? 0.0 : m[key].get<double>();
  };
  c.out() << absl::StrFormat(
      "metrics: prefill %.1f tok/s (%d tokens), decode %.1f tok/s (%d "
      "tokens), time to first token %.2f ms\n"
      "         peak RSS %.1f MiB, block bytes read %.1f MiB in %d loads (%d "
      "prefetched), at most %d blocks resident, prefetch wait %.2f ms\n",
      num("prefill_tokens_per_second"), m["prefill_tokens"].get<int64_t>(),
      num("decode_tokens_per_second"), m["decode_tokens"].get<int64_t>(),
      num("time_to_first_token_ms"),
      m["peak_rss_bytes"].get<uint64_t>() / 1048576.0,
      m["block_bytes_read"].get<uint64_t>() / 1048576.0,
      m["blocks_loaded"].get<uint64_t>(),
      m["prefetched_block_loads"].get<uint64_t>(),
      m["max_resident_blocks"].get<int>(), num("prefetch_wait_ms"));
}

}  // namespace

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

absl::StatusOr<VerifyOutcome> RunVerify(const VerifyOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  if (o.prompt_text.has_value() && o.prompt_ids.has_value()) {
    return absl::InvalidArgumentError(
        "give either --prompt or --prompt-ids, not both");
  }
  ASSIGN_OR_RETURN(std::unique_ptr<Model> model,
                   Model::Open(o.package, o.model));
  Context c(o, *model);
  const ModelConfig& config = model->config();
  const Manifest& manifest = model->package().manifest();
  c.out() << "llmverify " << kToolVersion << ": " << o.package.string() << " ("
          << config.family << ", " << manifest.weights_dtype << ", "
          << config.num_layers << " layers, "
          << (o.model.mode == LoadMode::kStream ? "stream" : "resident") << ", "
          << model->pool().num_threads() << " threads, "
          << model->kernels().name << ")\n";
  c.report["tool"] = "llmverify";
  c.report["version"] = kToolVersion;
  c.report["package"] = {{"path", o.package.string()},
                         {"family", config.family},
                         {"architecture", config.architecture},
                         {"weights_dtype", manifest.weights_dtype},
                         {"num_layers", config.num_layers},
                         {"hidden_size", config.hidden_size},
                         {"vocab_size", config.vocab_size},
                         {"has_tokenizer", model->package().has_tokenizer()}};
  c.report["settings"] = {
      {"mode", o.model.mode == LoadMode::kStream ? "stream" : "resident"},
      {"threads", model->pool().num_threads()},
      {"kernels", model->kernels().name},
      {"verify_checksums", o.model.verify_checksums}};
  const Gates& g = o.gates;
  c.report["gates"] = {
      {"max_nmse", g.max_nmse},
      {"min_top1", g.min_top1},
      {"max_abs_error", g.max_abs_error},
      {"require_greedy_match", g.require_greedy_match},
      {"ppl_rel_tolerance", g.ppl_rel_tolerance},
      {"expected_ppl", g.expected_ppl ? json(*g.expected_ppl) : json(nullptr)},
      {"max_ppl", g.max_ppl ? json(*g.max_ppl) : json(nullptr)}};

  std::optional<ReferenceBundle> reference;
  if (o.reference.has_value()) {
    ASSIGN_OR_RETURN(reference, ReadReference(*o.reference));
    RETURN_IF_ERROR(RunReference(c, *reference));
  }
  std::optional<EvalSet> eval;
  if (o.eval.has_value()) {
    EvalInputOptions eval_options;
    eval_options.window_tokens = o.eval_window;
    if (config.add_bos && config.bos_id.has_value()) {
      eval_options.bos_id = static_cast<int32_t>(*config.bos_id);
    }
    eval_options.codec = o.codec;
    ASSIGN_OR_RETURN(eval, LoadEvalSet(*o.eval, eval_options));
    RETURN_IF_ERROR(RunEval(c, *eval));
  }
  if (o.prompt_text.has_value() || o.prompt_ids.has_value()) {
    RETURN_IF_ERROR(RunGeneration(c));
  }
  if (o.save_reference.has_value()) {
    RETURN_IF_ERROR(SaveReference(c, reference ? &*reference : nullptr,
                                  eval ? &*eval : nullptr));
  }
  // Metrics are taken before a diagnosis opens a second model.
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  c.report["metrics"] = MetricsJson(c, wall);
  PrintMetrics(c, c.report["metrics"]);

  const bool can_diagnose = o.diagnose_against || o.diagnose_resident;
  if (c.diagnosis_tokens.empty()) {
    if (reference && !reference->cases.empty()) {
      c.diagnosis_tokens = reference->cases[0].input_ids;
    } else if (eval) {
      c.diagnosis_tokens = eval->windows[0];
    } else if (o.prompt_ids) {
      c.diagnosis_tokens = *o.prompt_ids;
    }
  }
  if (can_diagnose && (!c.passed || o.diagnose_always)) {
    if (c.diagnosis_tokens.empty()) {
      return absl::InvalidArgumentError(
          "diagnosis needs inputs: --reference, --eval or --prompt-ids");
    }
    RETURN_IF_ERROR(RunDiagnosis(c));
  } else if (!c.passed) {
    c.out() << "hint: rerun with --diagnose-against <trusted package> or "
               "--diagnose-resident to find the first block that diverges\n";
  }
  c.report["passed"] = c.passed;
  c.out() << "result: " << (c.passed ? "PASS" : "FAIL (a gate failed)") << "\n";
  if (o.json_out.has_value()) {
    RETURN_IF_ERROR(WriteStringToFile(*o.json_out, c.report.dump(2) + "\n"));
  }
  return VerifyOutcome{c.report, c.passed};
}

}  // namespace llmpack::runtime
