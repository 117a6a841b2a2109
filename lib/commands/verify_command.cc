#include "commands/verify_command.h"

#include <chrono>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "llmpack/checksum.h"
#include "llmpack/file_util.h"
#include "llmpack/status_macros.h"
#include "llmpack/version.h"
#include "tokenizer/chat_template.h"
#include "verify/diagnose.h"
#include "verify/eval.h"
#include "verify/reference.h"
#include "verify/report.h"
#include "verify/tokenizer_codec.h"

namespace llmpack::commands {
namespace {

using nlohmann::json;
using runtime::LoadMode;
using runtime::Model;
using runtime::ModelOptions;

struct Context {
  Context(const VerifyRequest& request, Model& m) : o(request), model(m) {}
  const VerifyRequest& o;
  Model& model;
  verify::TextCodec* codec = nullptr;                       // may stay null
  verify::TokenizerTextCodec* package_tokenizer = nullptr;  // may stay null
  runtime::RunStats stats;
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

absl::Status RunReference(Context& c, const verify::ReferenceBundle& bundle) {
  c.out() << "reference " << c.o.reference->string() << " (" << bundle.format
          << ", " << bundle.cases.size() << " cases)\n";
  ASSIGN_OR_RETURN(
      verify::ReferenceResult result,
      verify::CheckReference(c.model, bundle, c.o.gates, &c.stats));
  for (const verify::ReferenceCaseResult& rc : result.cases) {
    if (!rc.passed()) c.Fail(rc.input_ids);
    const verify::LogitsComparison& cmp = rc.comparison;
    c.out() << absl::StrFormat(
        "  %s: %d tokens, %d rows  max_abs %.3g  nmse %.3g  cos %.8f  top1 "
        "%.2f%%  greedy %d/%d  %s\n",
        rc.name, rc.input_ids.size(), cmp.rows, cmp.max_abs_error, cmp.nmse,
        cmp.min_cosine, 100 * cmp.top1_agreement, rc.greedy_matched_tokens,
        rc.greedy_reference_tokens, rc.passed() ? "PASS" : "FAIL");
  }
  c.report["reference"] =
      verify::ReferenceJson(result, c.o.reference->string(), bundle.format);
  return absl::OkStatus();
}

absl::Status RunEval(Context& c, const verify::EvalSet& set) {
  ASSIGN_OR_RETURN(verify::PerplexityCheck check,
                   verify::CheckPerplexity(c.model, set, c.o.eval_max_windows,
                                           c.o.gates, &c.stats));
  const verify::PerplexityResult& r = check.result;
  std::string line = absl::StrFormat(
      "eval %s (%s): %d windows, %d predicted tokens, perplexity %.6f",
      c.o.eval->string(), set.kind, r.windows, r.predicted_tokens,
      r.perplexity);
  if (check.expected.has_value()) {
    absl::StrAppendFormat(&line, " (expected %.6f, relative error %.3g)",
                          *check.expected, *check.relative_error);
  }
  if (!check.passed) {
    std::vector<int32_t> first = set.windows[0];
    first.resize(std::min<size_t>(first.size(), 128));
    c.Fail(first);
  }
  c.out() << line << "  " << (check.passed ? "PASS" : "FAIL") << "\n";
  c.report["eval"] =
      verify::PerplexityJson(check, c.o.eval->string(), set.kind);
  return absl::OkStatus();
}

// Text of a special token (e.g. "<|begin_of_text|>"), empty for id < 0.
std::string TokenText(const tokenizer::Tokenizer& t, int64_t id) {
  if (id < 0 || id >= t.vocab_size()) return "";
  const int32_t one[1] = {static_cast<int32_t>(id)};
  absl::StatusOr<std::string> text = t.Decode(one, /*skip_special=*/false);
  return text.ok() ? *text : "";
}

// The chat prompt: the package's template rendered with the messages and
// the generation prompt, then encoded without adding BOS/EOS (the template
// writes every special token itself, as transformers' apply_chat_template
// does). `rendered` receives the text.
absl::StatusOr<std::vector<int32_t>> ChatPromptIds(Context& c,
                                                   json* chat_report) {
  const ModelConfig& config = c.model.config();
  if (config.chat_template.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        c.o.package.string(),
        ": the package has no chat template; convert a checkpoint whose "
        "tokenizer_config.json has \"chat_template\" (or that has "
        "chat_template.jinja), or use --prompt / --prompt-ids"));
  }
  if (c.package_tokenizer == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        c.o.package.string(),
        ": --chat needs the package's tokenizer.txt; reconvert the package "
        "with its tokenizer or use --prompt-ids"));
  }
  const tokenizer::Tokenizer& t = c.package_tokenizer->tokenizer();
  std::vector<tokenizer::ChatMessage> messages;
  if (c.o.system_message.has_value()) {
    messages.push_back({"system", *c.o.system_message});
  }
  messages.push_back({"user", *c.o.chat_message});
  tokenizer::ChatTemplateOptions options;
  options.add_generation_prompt = true;
  options.bos_token = TokenText(t, t.spec().bos_id);
  options.eos_token =
      TokenText(t, t.spec().eos_id >= 0
                       ? t.spec().eos_id
                       : (config.eos_ids.empty() ? -1 : config.eos_ids[0]));
  ASSIGN_OR_RETURN(
      std::string rendered,
      tokenizer::RenderChatTemplate(config.chat_template, messages, options));
  json jm = json::array();
  for (const tokenizer::ChatMessage& m : messages) {
    jm.push_back({{"role", m.role}, {"content", m.content}});
  }
  *chat_report = {{"messages", jm}, {"rendered_prompt", rendered}};
  return t.Encode(rendered, /*add_special=*/false);
}

absl::Status RunGeneration(Context& c) {
  const VerifyRequest& o = c.o;
  std::vector<int32_t> ids;
  json chat_report;
  if (o.prompt_ids.has_value()) {
    ids = *o.prompt_ids;
  } else if (o.chat_message.has_value()) {
    ASSIGN_OR_RETURN(ids, ChatPromptIds(c, &chat_report));
  } else {
    if (c.codec == nullptr) {
      return absl::FailedPreconditionError(
          "--prompt needs a tokenizer, but the package has no tokenizer.txt; "
          "use --prompt-ids");
    }
    ASSIGN_OR_RETURN(ids, c.codec->Encode(*o.prompt_text, true));
  }
  if (ids.empty()) return absl::InvalidArgumentError("empty prompt");
  RETURN_IF_ERROR(verify::CheckTokenIds(c.model, ids, "prompt"));
  const int64_t n = static_cast<int64_t>(ids.size());
  runtime::Session session(c.model, n + std::max<int64_t>(o.max_new_tokens, 1));
  runtime::GenerateOptions options;
  options.max_new_tokens = o.max_new_tokens;
  options.sampling = o.sampling;
  if (o.stop_at_eos) options.stop_ids = c.model.config().eos_ids;
  std::ostream& stream = o.out != nullptr ? *o.out : c.sink;
  if (o.prompt_text.has_value()) stream << *o.prompt_text;
  // Streams each token's text as soon as it is sampled.
  std::string text;
  auto emit = [&](int32_t token) {
    const std::string piece =
        c.codec != nullptr ? c.codec->Push(token) : absl::StrCat(token, " ");
    text += piece;
    stream << piece << std::flush;
  };
  ASSIGN_OR_RETURN(runtime::GenerateResult result,
                   runtime::Generate(session, ids, options, emit, &c.stats));
  c.generation_ttft_ns = result.prefill_ns;
  if (c.codec != nullptr) {
    const std::string rest = c.codec->Flush();
    text += rest;
    stream << rest;
  }
  stream << "\n";
  c.report["generation"] = {
      {"prompt_ids", ids},
      {"generated_ids", result.tokens},
      {"text", c.codec != nullptr ? json(text) : json(nullptr)},
      {"stop_reason", result.stop_reason == runtime::StopReason::kStopId
                          ? "eos"
                          : "max_tokens"},
      {"sampling",
       {{"temperature", o.sampling.temperature},
        {"top_k", o.sampling.top_k},
        {"top_p", o.sampling.top_p},
        {"seed", o.sampling.seed}}}};
  if (!chat_report.is_null()) c.report["generation"]["chat"] = chat_report;
  return absl::OkStatus();
}

absl::Status SaveReference(Context& c,
                           const verify::ReferenceBundle* from_reference,
                           const verify::EvalSet* from_eval) {
  const VerifyRequest& o = c.o;
  std::vector<verify::NamedInput> inputs;
  if (from_reference != nullptr) {
    for (const verify::ReferenceCase& rc : from_reference->cases) {
      inputs.push_back({rc.name, rc.input_ids});
    }
  }
  if (from_eval != nullptr) {
    for (size_t i = 0; i < from_eval->windows.size() &&
                       static_cast<int64_t>(i) < o.save_max_windows;
         ++i) {
      inputs.push_back(
          {absl::StrCat("eval window ", i), from_eval->windows[i]});
    }
  }
  if (o.prompt_ids.has_value()) inputs.push_back({"prompt", *o.prompt_ids});
  if (inputs.empty()) {
    return absl::InvalidArgumentError(
        "--save-reference needs inputs: --reference, --eval or --prompt-ids");
  }
  verify::RecordOptions options;
  options.all_positions = o.save_all_positions;
  options.top_k = o.save_top_k;
  options.greedy_tokens = o.save_greedy_tokens;
  ASSIGN_OR_RETURN(verify::ReferenceBundle bundle,
                   verify::RecordReference(c.model, inputs, options, &c.stats));
  const Manifest& m = c.model.package().manifest();
  bundle.info = {
      {"package", o.package.string()},
      {"tool_version", kToolVersion},
      {"weights_dtype", m.weights_dtype},
      {"family", m.config.family},
      {"source_content_xxh3_64", ChecksumToHex(m.source.content_hash)},
      {"greedy_stop_margin", verify::kGreedyStopMargin}};
  RETURN_IF_ERROR(verify::WriteReferenceBundle(*o.save_reference, bundle));
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
  const VerifyRequest& o = c.o;
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
  ASSIGN_OR_RETURN(verify::Diagnosis d,
                   verify::DiagnoseBlocks(c.model, *trusted, c.diagnosis_tokens,
                                          o.gates.max_nmse));
  c.out() << "diagnosis against " << against << " ("
          << c.diagnosis_tokens.size() << " tokens):\n";
  for (const verify::BlockDivergence& b : d.blocks) {
    c.out() << absl::StrFormat(
        "  block %d: hidden-state nmse %.3g, max_abs %.3g%s\n", b.layer, b.nmse,
        b.max_abs_error,
        b.layer == d.first_divergent_layer ? "  <- first divergence" : "");
  }
  if (d.first_divergent_layer < 0) {
    c.out() << "  no block exceeds nmse " << d.threshold << "\n";
  }
  c.report["diagnosis"] = verify::DiagnosisJson(
      d, against, static_cast<int64_t>(c.diagnosis_tokens.size()));
  return absl::OkStatus();
}

void PrintMetrics(Context& c, const verify::RunMetrics& m) {
  c.out() << absl::StrFormat(
      "metrics: prefill %.1f tok/s (%d tokens), decode %.1f tok/s (%d "
      "tokens), time to first token %.2f ms\n"
      "         peak RSS %.1f MiB, block bytes read %.1f MiB in %d loads (%d "
      "prefetched), at most %d blocks resident, prefetch wait %.2f ms\n",
      m.prefill_tokens_per_second.value_or(0), m.prefill_tokens,
      m.decode_tokens_per_second.value_or(0), m.decode_tokens,
      m.time_to_first_token_ms.value_or(0), m.peak_rss_bytes / 1048576.0,
      m.block_bytes_read / 1048576.0, m.blocks_loaded, m.prefetched_block_loads,
      m.max_resident_blocks, m.prefetch_wait_ms);
}

absl::Status CheckRequest(const VerifyRequest& o) {
  const int generation_inputs = o.prompt_text.has_value() +
                                o.prompt_ids.has_value() +
                                o.chat_message.has_value();
  if (generation_inputs > 1) {
    return absl::InvalidArgumentError(
        "give one of --prompt, --prompt-ids and --chat, not several");
  }
  if (o.system_message.has_value() && !o.chat_message.has_value()) {
    return absl::InvalidArgumentError("--system needs --chat");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<VerifyOutcome> RunVerify(const VerifyRequest& o) {
  const auto start = std::chrono::steady_clock::now();
  RETURN_IF_ERROR(CheckRequest(o));
  if (o.against.has_value()) return RunAgainst(o);
  // The package's tokenizer, for text prompts, chat and text eval files; a
  // package without tokenizer.txt still works with token ids.
  std::unique_ptr<verify::TokenizerTextCodec> package_tokenizer;
  absl::StatusOr<std::unique_ptr<verify::TokenizerTextCodec>> loaded =
      verify::TokenizerTextCodec::Load(o.package);
  if (loaded.ok()) {
    package_tokenizer = *std::move(loaded);
  } else if (!absl::IsNotFound(loaded.status())) {
    return loaded.status();
  }
  ASSIGN_OR_RETURN(std::unique_ptr<Model> model,
                   Model::Open(o.package, o.model));
  Context c(o, *model);
  c.package_tokenizer = package_tokenizer.get();
  c.codec = o.codec != nullptr ? o.codec : package_tokenizer.get();
  const ModelConfig& config = model->config();
  const Manifest& manifest = model->package().manifest();
  const char* mode = o.model.mode == LoadMode::kStream ? "stream" : "resident";
  c.out() << "llmverify " << kToolVersion << ": " << o.package.string() << " ("
          << config.family << ", " << manifest.weights_dtype << ", "
          << config.num_layers << " layers, " << mode << ", "
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
      {"mode", mode},
      {"threads", model->pool().num_threads()},
      {"kernels", model->kernels().name},
      {"verify_checksums", o.model.verify_checksums},
      {"verify_each_load", o.model.verify_each_load},
      {"drop_page_cache", o.model.drop_page_cache},
      {"stream_io", runtime::StreamIoName(o.model.stream_io)}};
  c.report["gates"] = verify::GatesJson(o.gates);

  std::optional<verify::ReferenceBundle> reference;
  if (o.reference.has_value()) {
    ASSIGN_OR_RETURN(reference, verify::ReadReference(*o.reference));
    RETURN_IF_ERROR(RunReference(c, *reference));
  }
  std::optional<verify::EvalSet> eval;
  if (o.eval.has_value()) {
    verify::EvalInputOptions eval_options;
    eval_options.window_tokens = o.eval_window;
    if (config.add_bos && config.bos_id.has_value()) {
      eval_options.bos_id = static_cast<int32_t>(*config.bos_id);
    }
    eval_options.codec = c.codec;
    ASSIGN_OR_RETURN(eval, verify::LoadEvalSet(*o.eval, eval_options));
    RETURN_IF_ERROR(RunEval(c, *eval));
  }
  if (o.prompt_text || o.prompt_ids || o.chat_message) {
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
  const verify::RunMetrics metrics =
      verify::CollectMetrics(*model, c.stats, c.generation_ttft_ns, wall);
  c.report["metrics"] = verify::MetricsJson(metrics);
  PrintMetrics(c, metrics);

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

}  // namespace llmpack::commands
