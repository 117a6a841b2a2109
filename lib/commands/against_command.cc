// `llmverify <base> --against <other>`: the comparison itself is
// verify::CompareAgainst; this file checks the request, prints the summary
// and writes the report.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "commands/verify_command.h"
#include "llmpack/file_util.h"
#include "llmpack/status_macros.h"
#include "llmpack/version.h"
#include "verify/tokenizer_codec.h"

namespace llmpack::commands {
namespace {

absl::Status CheckAgainstRequest(const VerifyRequest& o) {
  const std::pair<bool, const char*> refused[] = {
      {o.prompt_text.has_value(), "--prompt"},
      {o.prompt_ids.has_value(), "--prompt-ids"},
      {o.chat_message.has_value(), "--chat"},
      {o.save_reference.has_value(), "--save-reference"},
      {o.diagnose_against.has_value(), "--diagnose-against"},
      {o.diagnose_resident, "--diagnose-resident"},
      {o.diagnose_always, "--diagnose"}};
  for (const auto& [given, name] : refused) {
    if (given) {
      return absl::InvalidArgumentError(
          absl::StrCat("--against compares on --eval and --reference inputs "
                       "only; ",
                       name, " cannot be combined with it"));
    }
  }
  return absl::OkStatus();
}

void PrintSummary(const verify::AgainstResult& r,
                  const nlohmann::json& report, std::ostream& out) {
  out << "against: " << r.other_path << " vs base " << r.base_path << "\n  "
      << r.positions << " positions (" << r.eval_windows << " eval windows, "
      << r.reference_prompts << " reference prompts)\n  KL(base||other) mean "
      << r.kl.mean << ", p99 " << r.kl.p99 << ", max " << r.kl.max
      << "\n  top-1 agreement " << r.top1_agreement * 100 << "%\n";
  if (r.predicted_tokens > 0) {
    const verify::Distribution& d = r.correct_prob_change;
    out << "  perplexity base " << r.base_perplexity << ", other "
        << r.other_perplexity << ", ratio " << r.perplexity_ratio
        << "\n  p(correct) change mean " << d.mean << ", rms " << d.rms
        << ", p1 " << d.p1 << ", p99 " << d.p99 << "\n";
  }
  for (const auto* s : {&r.base_size, &r.other_size}) {
    out << "  " << (s == &r.base_size ? "base" : "other") << ": "
        << s->bytes_on_disk << " bytes on disk";
    if (s->bits_per_weight.has_value()) {
      out << ", " << s->quantized_tensors << " quantized tensors at "
          << *s->bits_per_weight << " bits/weight";
    }
    out << "\n";
  }
  for (std::string gate : report["failures"]) {
    std::replace(gate.begin(), gate.end(), '_', '-');  // the option's name
    out << "  FAILED gate --" << gate << "\n";
  }
}

}  // namespace

absl::StatusOr<VerifyOutcome> RunAgainst(const VerifyRequest& o) {
  RETURN_IF_ERROR(CheckAgainstRequest(o));
  // The base package's tokenizer reads text eval files.
  std::unique_ptr<verify::TokenizerTextCodec> package_tokenizer;
  if (o.codec == nullptr) {
    auto loaded = verify::TokenizerTextCodec::Load(o.package);
    if (loaded.ok()) {
      package_tokenizer = *std::move(loaded);
    } else if (!absl::IsNotFound(loaded.status())) {
      return loaded.status();
    }
  }
  verify::AgainstOptions a;
  a.base = o.package;
  a.other = *o.against;
  a.model = o.model;
  a.eval = o.eval;
  a.eval_window = o.eval_window;
  a.eval_max_windows = o.eval_max_windows;
  a.reference = o.reference;
  a.codec = o.codec != nullptr ? o.codec : package_tokenizer.get();
  ASSIGN_OR_RETURN(const verify::AgainstResult r, verify::CompareAgainst(a));
  const nlohmann::json against = verify::AgainstToJson(r, o.against_gates);
  if (o.out != nullptr && !o.quiet) PrintSummary(r, against, *o.out);
  VerifyOutcome outcome;
  outcome.passed = against["passed"].get<bool>();
  outcome.report = {{"tool", "llmverify"},
                    {"version", kToolVersion},
                    {"against", against},
                    {"passed", outcome.passed}};
  if (o.json_out.has_value()) {
    RETURN_IF_ERROR(
        WriteStringToFile(*o.json_out, outcome.report.dump(2) + "\n"));
  }
  return outcome;
}

}  // namespace llmpack::commands
