// llmverify: runs a package with the streaming runtime and checks it
// against references (parity, perplexity), generates text, and reports
// throughput and memory. Thin front end over llmpack::commands::RunVerify.
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "commands/bench_command.h"
#include "commands/tokenize_command.h"
#include "commands/verify_command.h"
#include "llmpack/token_ids.h"
#include "llmpack/version.h"

namespace {

constexpr int kExitPass = 0;
constexpr int kExitGateFailed = 1;
constexpr int kExitError = 2;

constexpr char kDescription[] =
    "llmverify: run an llmpack package with the streaming runtime and check "
    "it.\n\n"
    "Any combination of --reference (logit parity + greedy continuations), "
    "--eval (perplexity), --prompt/--prompt-ids/--chat (generation) and "
    "--save-reference may be given; with none of them the package is only "
    "opened and validated. Every run reports prefill/decode throughput, time "
    "to first token, peak RSS, block bytes read, blocks loaded and prefetch "
    "wait (--json FILE writes all of it; fields in docs/llmverify.md).\n\n"
    "With --bench, runs the llama-bench style benchmark instead (pp512 then "
    "tg128 by default, --bench-reps repetitions, mean ± stddev) with in-run "
    "hardware probes and their ratios; --baseline FILE compares the ratios "
    "with an earlier --bench --json report.\n\n"
    "With --against PKG, both packages run on the --eval windows and "
    "--reference prompts and the second is compared with the first (KL "
    "divergence, top-1 agreement, perplexity ratio, sizes).\n\n"
    "Exit status: 0 every gate passed; 1 a gate failed (parity, perplexity, "
    "--against gates, a --bench ratio regressed past --max-regression); 2 "
    "error (bad usage, unreadable or inconsistent "
    "package, bad input files).";

// An option in `group` whose --help shows its default value.
template <typename T>
CLI::Option* AddDefaulted(CLI::App& app, const char* group,
                          const std::string& name, T& value,
                          const std::string& help) {
  return app.add_option(name, value, help)->capture_default_str()->group(group);
}

}  // namespace

int main(int argc, char** argv) {
  namespace rt = llmpack::runtime;
  llmpack::commands::VerifyRequest o;
  std::string package, reference, eval, prompt, prompt_ids, chat, system,
      save_reference, json_out, diagnose_against,
      kernels = "optimized", stream_io = "auto", save_positions = "all";
  bool resident = false, stream = false, no_checksums = false,
       no_greedy_gate = false, ignore_eos = false;
  double expected_ppl = 0, max_ppl = 0;
  std::string against;
  double max_kl = 0, max_ppl_ratio = 0;

  CLI::App app{kDescription};
  app.set_version_flag("--version",
                       std::string("llmverify ") + llmpack::kToolVersion);
  app.add_option("package", package, "package directory to verify")->required();

  auto* checks = "Checks";
  app.add_option("--reference", reference,
                 "reference bundle: a fixture reference.json (input ids, "
                 "float32 .npy logits, greedy continuation) or a bundle "
                 "written by --save-reference; reports per case max abs "
                 "error, NMSE, cosine, top-1 agreement and greedy match")
      ->group(checks);
  app.add_option("--eval", eval,
                 "perplexity input: a JSON object with \"windows\" or "
                 "\"sequences\" (token-id lists, BOS included), a file of "
                 "whitespace/comma separated token ids, or a text file "
                 "(needs a tokenizer); id and text files are cut into "
                 "windows of --eval-window tokens, each preceded by BOS")
      ->group(checks);
  AddDefaulted(app, checks, "--eval-window", o.eval_window,
               "tokens per window for token-id and text eval files")
      ->check(CLI::PositiveNumber);
  AddDefaulted(app, checks, "--eval-max-windows", o.eval_max_windows,
               "score only the first N windows (0: all; the eval file's "
               "expected perplexity then no longer applies)");

  auto* gen = "Generation";
  auto* prompt_opt =
      app.add_option("--prompt", prompt,
                     "text prompt (needs a tokenizer); the continuation is "
                     "printed as it is produced")
          ->group(gen);
  app.add_option("--prompt-ids", prompt_ids,
                 "prompt as token ids, e.g. \"0,51,1083\" (include BOS "
                 "yourself); generated ids (or text, with a tokenizer) are "
                 "printed as produced")
      ->excludes(prompt_opt)
      ->group(gen);
  auto* chat_opt =
      app.add_option("--chat", chat,
                     "a user message: rendered with the package's chat "
                     "template (and --system) plus the assistant's "
                     "generation prompt; the reply is printed as produced "
                     "and ends at the package's stop ids")
          ->excludes(prompt_opt)
          ->group(gen);
  app.add_option("--system", system,
                 "with --chat: a system message placed before the user's")
      ->needs(chat_opt)
      ->group(gen);
  AddDefaulted(app, gen, "-n,--max-new-tokens", o.max_new_tokens,
               "tokens to generate")
      ->check(CLI::NonNegativeNumber);
  AddDefaulted(app, gen, "--temperature", o.sampling.temperature,
               "sampling temperature; 0 = greedy")
      ->check(CLI::NonNegativeNumber);
  AddDefaulted(app, gen, "--top-k", o.sampling.top_k,
               "sample among the k most likely tokens (0: all)")
      ->check(CLI::NonNegativeNumber);
  AddDefaulted(app, gen, "--top-p", o.sampling.top_p,
               "nucleus sampling: smallest set of tokens holding this "
               "probability mass")
      ->check(CLI::Range(0.0, 1.0));
  AddDefaulted(app, gen, "--seed", o.sampling.seed,
               "random seed; the same seed gives the same tokens");
  app.add_flag("--ignore-eos", ignore_eos,
               "keep generating after an end-of-sequence (stop) token")
      ->group(gen);

  auto* save = "Saving references";
  app.add_option("--save-reference", save_reference,
                 "write a zstd-compressed reference bundle from this "
                 "(trusted) package: the inputs of --reference, the first "
                 "--save-max-windows windows of --eval and --prompt-ids, "
                 "with their logits and greedy continuations")
      ->group(save);
  AddDefaulted(app, save, "--save-positions", save_positions,
               "logits rows to save per input: all positions or the last")
      ->check(CLI::IsMember({"all", "last"}));
  AddDefaulted(app, save, "--save-top-k", o.save_top_k,
               "keep only the k largest logits per row plus the row's "
               "mean, variance and log-sum-exp (0: full rows)")
      ->check(CLI::NonNegativeNumber);
  AddDefaulted(app, save, "--save-greedy", o.save_greedy_tokens,
               "greedy continuation length per input (stops early before "
               "a step whose top-1/top-2 margin is below 1e-3)")
      ->check(CLI::NonNegativeNumber);
  AddDefaulted(app, save, "--save-max-windows", o.save_max_windows,
               "eval windows to turn into saved cases")
      ->check(CLI::NonNegativeNumber);

  auto* gates = "Gates (exit status 1 when one fails)";
  AddDefaulted(app, gates, "--max-nmse", o.gates.max_nmse,
               "largest logits NMSE (mean squared error / reference "
               "variance) per reference case");
  AddDefaulted(app, gates, "--min-top1", o.gates.min_top1,
               "smallest fraction of rows whose argmax matches the "
               "reference (with --against: of positions whose argmax "
               "agrees; no gate unless given)");
  AddDefaulted(app, gates, "--max-abs-error", o.gates.max_abs_error,
               "largest absolute logit difference");
  app.add_flag("--no-greedy-gate", no_greedy_gate,
               "do not fail when a greedy continuation differs")
      ->group(gates);
  AddDefaulted(app, gates, "--ppl-tolerance", o.gates.ppl_rel_tolerance,
               "largest relative perplexity error against the expected "
               "value (--expected-ppl, else the eval file's fp32_ppl)");
  auto* expected_opt =
      app.add_option("--expected-ppl", expected_ppl,
                     "expected perplexity (overrides the eval file's)")
          ->group(gates);
  auto* max_ppl_opt =
      app.add_option("--max-ppl", max_ppl, "fail above this perplexity")
          ->group(gates);

  auto* cmp =
      "Comparing two packages (--against; exit status 1 when a gate fails)";
  auto* against_opt =
      app.add_option(
             "--against", against,
             "run this package too on the --eval windows and "
             "--reference prompts and compare it with the first: mean, "
             "p99 and max KL(first || this), top-1 agreement, perplexity "
             "of both and their ratio, change in probability of the "
             "correct token, sizes and bits per weight")
          ->group(cmp);
  auto* max_kl_opt =
      app.add_option("--max-kl", max_kl,
                     "with --against: fail when the mean KL divergence exceeds "
                     "this")
          ->needs(against_opt)
          ->group(cmp);
  auto* max_ppl_ratio_opt =
      app.add_option("--max-ppl-ratio", max_ppl_ratio,
                     "with --against: fail when perplexity(this) / "
                     "perplexity(first) exceeds this")
          ->needs(against_opt)
          ->group(cmp);
  // --min-top1 (a parity gate above) is the top-1 agreement gate of
  // --against when given explicitly.

  auto* tok = "Tokenizer (the positional argument may also be a tokenizer.txt)";
  std::string tokenize_text, detokenize_ids;
  bool add_special = false;
  auto* tokenize_opt =
      app.add_option("--tokenize", tokenize_text,
                     "print the token ids of TEXT (or of @FILE's contents) "
                     "as a JSON array, then exit")
          ->group(tok);
  app.add_flag("--add-special", add_special,
               "with --tokenize: add BOS/EOS as the tokenizer's "
               "post-processor does")
      ->group(tok);
  app.add_option("--detokenize", detokenize_ids,
                 "print the text of token ids (a JSON array, whitespace or "
                 "comma separated, or @FILE), then exit")
      ->excludes(tokenize_opt)
      ->group(tok);

  auto* diag = "Diagnosis";
  app.add_option("--diagnose-against", diagnose_against,
                 "when a gate fails, compare hidden states after every "
                 "block with this trusted package and name the first block "
                 "that diverges")
      ->group(diag);
  app.add_flag("--diagnose-resident", o.diagnose_resident,
               "when a gate fails, compare block by block with a --resident "
               "run of the same package (finds loader faults)")
      ->group(diag);
  app.add_flag("--diagnose", o.diagnose_always,
               "run the diagnosis even when every gate passes")
      ->group(diag);

  auto* run = "Runtime";
  auto* stream_flag =
      app.add_flag("--stream", stream,
                   "stream blocks through two slots, loading block i+1 "
                   "while block i computes (default)")
          ->group(run);
  auto* resident_flag =
      app.add_flag("--resident", resident,
                   "memory-map every block file once instead of streaming")
          ->excludes(stream_flag)
          ->group(run);
  AddDefaulted(app, run, "--threads", o.model.threads,
               "compute threads (0: all hardware threads)")
      ->check(CLI::NonNegativeNumber);
  AddDefaulted(app, run, "--kernels", kernels,
               "optimized (Highway SIMD, best target at run time) or "
               "scalar (reference loops)")
      ->check(CLI::IsMember({"optimized", "scalar"}));
  app.add_flag("--no-verify-checksums", no_checksums,
               "skip the XXH3 checksums of every file at open (sizes, "
               "headers and shapes are still checked)")
      ->group(run);
  app.add_flag("--verify-each-load", o.model.verify_each_load,
               "also re-hash every tensor each time its block is loaded "
               "(costs a pass over the model per token; by default files "
               "are hashed once at open and a load only checks that the "
               "file was not changed since)")
      ->group(run);
  AddDefaulted(app, run, "--stream-io", stream_io,
               "with --stream, how a block gets into memory: map (the "
               "file's page cache pages, no copy), copy (into a private "
               "buffer), or auto: map where the page cache can be mapped "
               "in 2 MiB pages, else copy (docs/runtime.md)")
      ->check(CLI::IsMember({"auto", "map", "copy"}))
      ->excludes(resident_flag)
      ->group(run);
  app.add_flag("--drop-page-cache", o.model.drop_page_cache,
               "with --stream: drop each block file from the page cache once "
               "it is read (for models larger than memory; every token then "
               "reads from disk, which is how cold streaming is measured)")
      ->excludes(resident_flag)
      ->group(run);

  auto* bench_group = "Benchmark (--bench; fields in docs/llmverify.md)";
  llmpack::commands::BenchRequest bench;
  bool run_bench = false;
  std::string baseline;
  auto* bench_flag =
      app.add_flag("--bench", run_bench,
                   "benchmark the package: a prompt of --bench-pp tokens then "
                   "--bench-tg generated tokens, --bench-reps times, with the "
                   "memory bandwidth, compute peak and file read probes")
          ->group(bench_group);
  AddDefaulted(app, bench_group, "--bench-pp", bench.prompt_tokens,
               "prompt tokens (pp); 0: none")
      ->check(CLI::NonNegativeNumber);
  AddDefaulted(app, bench_group, "--bench-tg", bench.generate_tokens,
               "generated tokens (tg); 0: none")
      ->check(CLI::NonNegativeNumber);
  AddDefaulted(app, bench_group, "--bench-reps", bench.reps, "repetitions")
      ->check(CLI::PositiveNumber);
  app.add_flag("--cold", bench.cold,
               "with --bench --stream: evict the package from the page cache "
               "before each repetition and each generated token")
      ->needs(bench_flag)
      ->group(bench_group);
  AddDefaulted(app, bench_group, "--probe-seconds", bench.probe_seconds,
               "time of each probe per repetition")
      ->check(CLI::PositiveNumber);
  app.add_option("--baseline", baseline,
                 "with --bench: an earlier --bench --json report of the same "
                 "settings; every ratio is compared with it")
      ->needs(bench_flag)
      ->group(bench_group);
  AddDefaulted(app, bench_group, "--max-regression", bench.max_regression_pct,
               "with --baseline: fail (exit 1) when a ratio dropped by more "
               "than this many percent")
      ->check(CLI::NonNegativeNumber);

  app.add_option("--json", json_out,
                 "write the full report (parity, perplexity, generation, "
                 "metrics, gates) as JSON to this file");
  app.add_flag("-q,--quiet", o.quiet, "print only generated text (and errors)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? kExitPass : kExitError;
  }

  if (app.count("--tokenize") > 0 || app.count("--detokenize") > 0) {
    const absl::StatusOr<std::string> result =
        app.count("--tokenize") > 0
            ? llmpack::commands::TokenizeToJson(package, tokenize_text,
                                                add_special)
            : llmpack::commands::DetokenizeIds(package, detokenize_ids);
    if (!result.ok()) {
      std::cerr << "llmverify: error: " << result.status().message() << "\n";
      return kExitError;
    }
    std::cout << *result << "\n";
    return kExitPass;
  }
  // Every model option, for a verify run and a benchmark alike (the
  // benchmark once built its own and silently dropped some).
  o.model.mode = resident ? rt::LoadMode::kResident : rt::LoadMode::kStream;
  o.model.verify_checksums = !no_checksums;
  rt::ParseKernelChoice(kernels, &o.model.kernels);
  o.model.stream_io = rt::ParseStreamIo(stream_io);
  if (run_bench) {
    bench.package = package;
    bench.model = o.model;
    if (!json_out.empty()) bench.json_out = json_out;
    if (!baseline.empty()) bench.baseline = baseline;
    bench.out = &std::cout;
    const absl::StatusOr<llmpack::commands::BenchOutcome> result =
        llmpack::commands::RunBench(bench);
    if (!result.ok()) {
      std::cout.flush();
      std::cerr << "llmverify: error: " << result.status().message() << "\n";
      return kExitError;
    }
    return result->passed ? kExitPass : kExitGateFailed;
  }
  o.package = package;
  if (!reference.empty()) o.reference = reference;
  if (!eval.empty()) o.eval = eval;
  if (app.count("--prompt") > 0) o.prompt_text = prompt;
  if (app.count("--prompt-ids") > 0) {
    absl::StatusOr<std::vector<int32_t>> ids =
        llmpack::ParseTokenIds(prompt_ids, "--prompt-ids");
    if (ids.ok() && ids->empty()) {
      ids = absl::InvalidArgumentError("--prompt-ids: no token ids given");
    }
    if (!ids.ok()) {
      std::cerr << "llmverify: error: " << ids.status().message() << "\n";
      return kExitError;
    }
    o.prompt_ids = *ids;
  }
  if (app.count("--chat") > 0) o.chat_message = chat;
  if (app.count("--system") > 0) o.system_message = system;
  if (!save_reference.empty()) o.save_reference = save_reference;
  o.save_all_positions = save_positions == "all";
  if (!json_out.empty()) o.json_out = json_out;
  if (!diagnose_against.empty()) o.diagnose_against = diagnose_against;
  o.gates.require_greedy_match = !no_greedy_gate;
  if (expected_opt->count() > 0) o.gates.expected_ppl = expected_ppl;
  if (max_ppl_opt->count() > 0) o.gates.max_ppl = max_ppl;
  o.stop_at_eos = !ignore_eos;
  o.out = &std::cout;
  if (!against.empty()) {
    o.against = against;
    if (max_kl_opt->count() > 0) o.against_gates.max_kl = max_kl;
    if (app.count("--min-top1") > 0)
      o.against_gates.min_top1 = o.gates.min_top1;
    if (max_ppl_ratio_opt->count() > 0) {
      o.against_gates.max_ppl_ratio = max_ppl_ratio;
    }
  }

  absl::StatusOr<llmpack::commands::VerifyOutcome> outcome =
      llmpack::commands::RunVerify(o);
  if (!outcome.ok()) {
    std::cout.flush();
    std::cerr << "llmverify: error: " << outcome.status().message() << "\n";
    return kExitError;
  }
  return outcome->passed ? kExitPass : kExitGateFailed;
}
