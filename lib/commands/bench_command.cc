#include "commands/bench_command.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "llmpack/file_util.h"
#include "llmpack/json_file.h"
#include "llmpack/status_macros.h"
#include "llmpack/version.h"
#include "runtime/generate.h"
#include "runtime/probes.h"
#include "verify/report.h"

namespace llmpack::commands {
namespace {

using nlohmann::json;
using runtime::LoadMode;
using runtime::Model;

// What the package costs per token, from its tensor directories.
struct PackageCost {
  uint64_t block_bytes = 0;  // every block file's tensor data
  uint64_t lm_bytes = 0;     // final norm + lm head
  // Block and lm tensor bytes: what a generated token reads (the
  // embedding row is negligible).
  uint64_t weight_bytes_per_token = 0;
  double prompt_flops = 0;  // one prompt of prompt_tokens, last logits row
  DType matmul_dtype = DType::kF32;
  std::vector<std::filesystem::path> files;
};

double MatrixElements(const TensorFileReader& file) {
  double n = 0;
  for (const TensorInfo& t : file.tensors()) {
    if (t.shape.size() == 2) {
      n += static_cast<double>(t.shape[0]) * static_cast<double>(t.shape[1]);
    }
  }
  return n;
}

uint64_t TensorBytes(const TensorFileReader& file) {
  uint64_t n = 0;
  for (const TensorInfo& t : file.tensors()) n += t.size_bytes;
  return n;
}

PackageCost CostOf(const runtime::Package& p, int64_t prompt_tokens) {
  PackageCost c;
  const ModelConfig& config = p.config();
  double block_matrix_elements = 0;
  c.files.push_back(p.embedding().path());
  for (int64_t l = 0; l < p.num_layers(); ++l) {
    c.block_bytes += TensorBytes(p.block(l));
    block_matrix_elements += MatrixElements(p.block(l));
    c.files.push_back(p.block(l).path());
  }
  c.files.push_back(p.lm().path());
  c.lm_bytes = TensorBytes(p.lm());
  c.weight_bytes_per_token = c.block_bytes + c.lm_bytes;
  for (const TensorInfo& t : p.block(0).tensors()) {
    if (t.shape.size() == 2) {
      c.matmul_dtype = t.dtype;
      break;
    }
  }
  // A multiply-add is 2 FLOPs: the Linears over every token, attention
  // (q.k and the weighted sum of v over positions 0..t for token t) and the
  // lm head for the last row only.
  const double tokens = static_cast<double>(prompt_tokens);
  const double attention = 4.0 * static_cast<double>(config.num_layers) *
                           static_cast<double>(config.q_dim()) * tokens *
                           (tokens + 1) / 2;
  c.prompt_flops = 2.0 * block_matrix_elements * tokens + attention +
                   2.0 * MatrixElements(p.lm());
  return c;
}

// Mean and sample standard deviation (0 for one value) of one figure over
// the repetitions.
json Summary(const std::vector<double>& v) {
  double mean = 0;
  for (double x : v) mean += x;
  mean /= static_cast<double>(std::max<size_t>(v.size(), 1));
  double ss = 0;
  for (double x : v) ss += (x - mean) * (x - mean);
  const double stddev =
      v.size() > 1 ? std::sqrt(ss / static_cast<double>(v.size() - 1)) : 0.0;
  return {{"mean", mean}, {"stddev", stddev}, {"values", v}};
}

// The compute peak a Linear on `dtype` weights is measured against.
double PeakFor(DType dtype, const runtime::ComputePeaks& p, std::string* kind) {
  if (dtype == DType::kQ4 || dtype == DType::kQ8) {
    *kind = "int8_dot";
    return p.int8_dot_ops;
  }
  if (dtype == DType::kBF16) {
    *kind = "bf16_dot";
    return p.bf16_dot_flops;
  }
  *kind = "f32_fma";
  return p.f32_fma_flops;
}

// Starts a new peak-RSS window (Linux: writing 5 to clear_refs resets
// VmHWM), so the probes' buffers do not count. Best effort: false when the
// kernel refuses.
bool ResetPeakRss() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
  f.flush();
  return static_cast<bool>(f);
}

std::string CpuModelName() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string name = line.substr(colon + 1);
        name.erase(0, name.find_first_not_of(" \t"));
        return name;
      }
    }
  }
  return "unknown";
}

// One repetition's measurements.
struct Rep {
  double bandwidth = 0;  // bytes/s
  runtime::ComputePeaks peaks;
  double prompt_seconds = 0;
  double decode_seconds = 0;
  uint64_t decode_block_bytes = 0;  // loader reads during decode
  int64_t wait_ns = 0;              // loader wait during the repetition
  uint64_t peak_rss = 0;
};

absl::StatusOr<Rep> RunRep(const BenchRequest& o, Model& model,
                           const PackageCost& cost) {
  Rep r;
  ASSIGN_OR_RETURN(r.bandwidth,
                   runtime::MeasureReadBandwidth(
                       model.pool(), o.bandwidth_probe_bytes, o.probe_seconds));
  r.peaks = runtime::MeasureComputePeaks(model.pool(), o.probe_seconds);
  ResetPeakRss();
  const bool stream = model.loader().mode() == LoadMode::kStream;
  if (o.cold) RETURN_IF_ERROR(runtime::EvictFromPageCache(cost.files));
  const int64_t vocab = model.config().vocab_size;
  std::vector<int32_t> prompt(static_cast<size_t>(o.prompt_tokens));
  for (size_t i = 0; i < prompt.size(); ++i) {
    prompt[i] = static_cast<int32_t>((i * 7919 + 1) % vocab);
  }
  const runtime::LoaderStats before = model.loader().stats();
  runtime::Session session(model, o.prompt_tokens + o.generate_tokens);
  runtime::RunStats stats;
  std::vector<float> logits;
  if (o.prompt_tokens > 0) {
    RETURN_IF_ERROR(runtime::Prefill(
        session, prompt, runtime::LogitsRows::kLast, &logits, &stats));
  }
  const runtime::LoaderStats after_prompt = model.loader().stats();
  for (int64_t i = 0; i < o.generate_tokens; ++i) {
    if (o.cold && stream) {
      RETURN_IF_ERROR(runtime::EvictFromPageCache(cost.files));
    }
    const int32_t token = static_cast<int32_t>((i * 31 + 7) % vocab);
    RETURN_IF_ERROR(runtime::DecodeStep(session, token, &logits, &stats));
  }
  const runtime::LoaderStats after = model.loader().stats();
  r.prompt_seconds = static_cast<double>(stats.prefill_ns) * 1e-9;
  r.decode_seconds = static_cast<double>(stats.decode_ns) * 1e-9;
  r.decode_block_bytes = after.bytes_read - after_prompt.bytes_read;
  r.wait_ns = after.wait_ns - before.wait_ns;
  r.peak_rss = verify::PeakRssBytes();
  return r;
}

// The report's "results" and "ratios" from the repetitions.
void Summarize(const BenchRequest& o, const PackageCost& cost,
               const runtime::FileReadThroughput& file_probe, bool stream,
               const std::vector<Rep>& reps, json* report) {
  std::vector<double> pp_tps, pp_flops, tg_tps, tg_bytes, stream_bytes, bw, f32,
      bf16, int8, pp_peak, pp_ratio, tg_ratio, read_ratio, wait_ms;
  std::string peak_kind;
  uint64_t peak_rss = 0;
  const double file_rate = o.cold ? file_probe.cold_bytes_per_second
                                  : file_probe.warm_bytes_per_second;
  for (const Rep& r : reps) {
    const double peak = PeakFor(cost.matmul_dtype, r.peaks, &peak_kind);
    bw.push_back(r.bandwidth);
    f32.push_back(r.peaks.f32_fma_flops);
    bf16.push_back(r.peaks.bf16_dot_flops);
    int8.push_back(r.peaks.int8_dot_ops);
    if (o.prompt_tokens > 0) {
      pp_tps.push_back(o.prompt_tokens / r.prompt_seconds);
      pp_flops.push_back(cost.prompt_flops / r.prompt_seconds);
      pp_peak.push_back(peak);
      pp_ratio.push_back(pp_flops.back() / peak);
    }
    if (o.generate_tokens > 0) {
      tg_tps.push_back(o.generate_tokens / r.decode_seconds);
      tg_bytes.push_back(cost.weight_bytes_per_token * tg_tps.back());
      tg_ratio.push_back(tg_bytes.back() / r.bandwidth);
      if (stream) {
        stream_bytes.push_back(r.decode_block_bytes / r.decode_seconds);
        read_ratio.push_back(stream_bytes.back() / file_rate);
      }
    }
    wait_ms.push_back(static_cast<double>(r.wait_ns) * 1e-6);
    peak_rss = std::max(peak_rss, r.peak_rss);
  }
  const runtime::ComputePeaks& isa = reps.front().peaks;
  (*report)["probes"] = {
      {"read_bandwidth_bytes_per_second", Summary(bw)},
      {"f32_fma_flops", Summary(f32)},
      {"bf16_dot_flops", Summary(bf16)},
      {"int8_dot_ops", Summary(int8)},
      {"isa",
       {{"f32_fma", isa.f32_isa},
        {"bf16_dot", isa.bf16_isa},
        {"int8_dot", isa.int8_isa}}},
      {"prefill_peak", peak_kind},
      {"file_read",
       {{"cold_bytes_per_second", file_probe.cold_bytes_per_second},
        {"warm_bytes_per_second", file_probe.warm_bytes_per_second},
        {"bytes", file_probe.bytes}}}};
  auto optional = [](const std::vector<double>& v) {
    return v.empty() ? json(nullptr) : Summary(v);
  };
  (*report)["results"] = {
      {"pp",
       {{"tokens", o.prompt_tokens},
        {"tokens_per_second", optional(pp_tps)},
        {"flops_per_second", optional(pp_flops)}}},
      {"tg",
       {{"tokens", o.generate_tokens},
        {"tokens_per_second", optional(tg_tps)},
        {"weight_bytes_per_second", optional(tg_bytes)},
        {"stream_read_bytes_per_second", optional(stream_bytes)}}},
      {"peak_rss_bytes", peak_rss},
      {"prefetch_wait_ms", Summary(wait_ms)}};
  // Noise on a shared machine only ever slows a run or a probe down, so
  // the best figure of each over the repetitions is the steadiest estimate
  // of the undisturbed one: "best" = max(speed) / max(probe).
  auto ratio = [](const std::vector<double>& ratios,
                  const std::vector<double>& speed,
                  const std::vector<double>& probe) {
    if (ratios.empty()) return json(nullptr);
    json s = Summary(ratios);
    s["best"] = *std::max_element(speed.begin(), speed.end()) /
                *std::max_element(probe.begin(), probe.end());
    return s;
  };
  const std::vector<double> file(stream_bytes.size(), file_rate);
  (*report)["ratios"] = {
      {"prefill_compute", ratio(pp_ratio, pp_flops, pp_peak)},
      {"decode_bandwidth", ratio(tg_ratio, tg_bytes, bw)},
      {"stream_read", ratio(read_ratio, stream_bytes, file)}};
}

std::string PlusMinus(const json& s, double scale, int decimals) {
  if (s.is_null()) return "-";
  return absl::StrFormat("%.*f", decimals, s["mean"].get<double>() * scale) +
         " ± " +
         absl::StrFormat("%.*f", decimals, s["stddev"].get<double>() * scale);
}

// Characters on screen: UTF-8 continuation bytes (the "±") take no column.
size_t Columns(const std::string& text) {
  size_t n = 0;
  for (unsigned char ch : text) n += (ch & 0xC0) != 0x80;
  return n;
}

// rows[0] is the header; every column as wide as its widest cell.
void PrintMarkdownTable(const std::vector<std::vector<std::string>>& rows,
                        std::ostream& out) {
  std::vector<size_t> width(rows[0].size(), 0);
  for (const auto& row : rows) {
    for (size_t c = 0; c < row.size(); ++c) {
      width[c] = std::max(width[c], Columns(row[c]));
    }
  }
  for (size_t r = 0; r < rows.size(); ++r) {
    out << "|";
    for (size_t c = 0; c < rows[r].size(); ++c) {
      out << " " << rows[r][c]
          << std::string(width[c] - Columns(rows[r][c]), ' ') << " |";
    }
    out << "\n";
    if (r == 0) {
      out << "|";
      for (size_t w : width) out << std::string(w + 2, '-') << "|";
      out << "\n";
    }
  }
}

void PrintTable(const json& r, std::ostream& out) {
  const json& res = r["results"];
  const json& probes = r["probes"];
  const json& ratios = r["ratios"];
  const json& s = r["settings"];
  const std::string model = absl::StrCat(
      r["package"]["family"].get<std::string>(), " ",
      r["package"]["weights_dtype"].get<std::string>(), " ",
      absl::StrFormat(
          "%.2f GiB",
          r["package"]["weight_bytes_per_token"].get<double>() / 1073741824.0));
  const std::string mode = absl::StrCat(s["mode"].get<std::string>(),
                                        s["cold"].get<bool>() ? " cold" : "");
  const std::string threads = std::to_string(s["threads"].get<int>());
  std::vector<std::vector<std::string>> rows = {
      {"model", "mode", "threads", "test", "t/s", "rate", "ratio to probe"}};
  if (!res["pp"]["tokens_per_second"].is_null()) {
    rows.push_back(
        {model, mode, threads,
         absl::StrCat("pp", res["pp"]["tokens"].get<int64_t>()),
         PlusMinus(res["pp"]["tokens_per_second"], 1, 2),
         PlusMinus(res["pp"]["flops_per_second"], 1e-9, 1) + " GFLOP/s",
         PlusMinus(ratios["prefill_compute"], 1, 3) + " " +
             probes["prefill_peak"].get<std::string>()});
  }
  if (!res["tg"]["tokens_per_second"].is_null()) {
    rows.push_back(
        {model, mode, threads,
         absl::StrCat("tg", res["tg"]["tokens"].get<int64_t>()),
         PlusMinus(res["tg"]["tokens_per_second"], 1, 2),
         PlusMinus(res["tg"]["weight_bytes_per_second"], 1e-9, 2) + " GB/s",
         PlusMinus(ratios["decode_bandwidth"], 1, 3) + " bandwidth"});
    if (!ratios["stream_read"].is_null()) {
      rows.push_back(
          {model, mode, threads, "read", "",
           PlusMinus(res["tg"]["stream_read_bytes_per_second"], 1e-9, 2) +
               " GB/s",
           PlusMinus(ratios["stream_read"], 1, 3) + " file read"});
    }
  }
  PrintMarkdownTable(rows, out);
  out << absl::StrFormat(
      "probes: read bandwidth %s GB/s, f32 FMA %s GFLOP/s (%s), bf16 dot %s "
      "GFLOP/s (%s), int8 dot %s GOP/s (%s), file read cold %.2f / warm %.2f "
      "GB/s\n",
      PlusMinus(probes["read_bandwidth_bytes_per_second"], 1e-9, 2),
      PlusMinus(probes["f32_fma_flops"], 1e-9, 0),
      probes["isa"]["f32_fma"].get<std::string>(),
      PlusMinus(probes["bf16_dot_flops"], 1e-9, 0),
      probes["isa"]["bf16_dot"].get<std::string>(),
      PlusMinus(probes["int8_dot_ops"], 1e-9, 0),
      probes["isa"]["int8_dot"].get<std::string>(),
      probes["file_read"]["cold_bytes_per_second"].get<double>() * 1e-9,
      probes["file_read"]["warm_bytes_per_second"].get<double>() * 1e-9);
  out << absl::StrFormat(
      "memory: peak RSS %.1f MiB, prefetch wait %s ms per repetition\n",
      res["peak_rss_bytes"].get<double>() / 1048576.0,
      PlusMinus(res["prefetch_wait_ms"], 1, 2));
  // How blocks arrived: a CI log then tells mapped from copied streaming
  // and whether 2 MiB page cache folios were had (docs/runtime.md).
  if (res.contains("loader")) {
    const json& l = res["loader"];
    out << absl::StrFormat(
        "blocks: %d loads, %d mapped, %d seen in 2 MiB pages, %d page cache "
        "rebuilds\n",
        l["blocks_loaded"].get<int64_t>(), l["mapped_loads"].get<int64_t>(),
        l["huge_checked_loads"].get<int64_t>(),
        l["page_cache_rebuilds"].get<int64_t>());
  }
}

void PrintComparison(const std::vector<RatioChange>& changes, double pct,
                     const std::string& name, std::ostream& out) {
  out << "baseline " << name << " (fail below -" << pct << "%):\n";
  out << absl::StrFormat("  %-18s %10s %10s %9s\n", "ratio", "baseline", "now",
                         "change");
  for (const RatioChange& c : changes) {
    out << absl::StrFormat("  %-18s %10.4f %10.4f %+8.1f%%  %s\n", c.name,
                           c.baseline, c.now, c.change_pct,
                           c.regressed ? "REGRESSION" : "ok");
  }
}

absl::Status CheckRequest(const BenchRequest& o) {
  if (o.reps < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--bench-reps: expected at least 1, found ", o.reps));
  }
  if (o.prompt_tokens < 0 || o.generate_tokens < 0 ||
      o.prompt_tokens + o.generate_tokens == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--bench-pp/--bench-tg: expected counts >= 0 with at least one "
        "token, found ",
        o.prompt_tokens, " and ", o.generate_tokens));
  }
  if (o.cold && o.model.mode != LoadMode::kStream) {
    return absl::InvalidArgumentError(
        "--cold needs --stream: the pages of a --resident (memory-mapped) "
        "package cannot be evicted while it is open");
  }
  if (!(o.probe_seconds > 0)) {
    return absl::InvalidArgumentError("probe time must be positive");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<BenchOutcome> RunBench(const BenchRequest& o) {
  RETURN_IF_ERROR(CheckRequest(o));
  std::optional<json> baseline;
  if (o.baseline.has_value()) {
    ASSIGN_OR_RETURN(baseline, ReadJsonFile(*o.baseline));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<Model> model,
                   Model::Open(o.package, o.model));
  const ModelConfig& config = model->config();
  if (o.prompt_tokens + o.generate_tokens > config.max_positions &&
      config.max_positions > 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        o.package.string(),
        ": --bench-pp + --bench-tg = ", o.prompt_tokens + o.generate_tokens,
        " tokens, expected at most the "
        "model's max_positions ",
        config.max_positions));
  }
  const PackageCost cost = CostOf(model->package(), o.prompt_tokens);
  const bool stream = o.model.mode == LoadMode::kStream;
  json report;
  report["tool"] = "llmverify";
  report["version"] = kToolVersion;
  report["package"] = {
      {"path", o.package.string()},
      {"family", config.family},
      {"weights_dtype", model->package().manifest().weights_dtype},
      {"matmul_dtype", DTypeName(cost.matmul_dtype)},
      {"num_layers", config.num_layers},
      {"hidden_size", config.hidden_size},
      {"vocab_size", config.vocab_size},
      {"block_bytes", cost.block_bytes},
      {"lm_bytes", cost.lm_bytes},
      {"weight_bytes_per_token", cost.weight_bytes_per_token},
      {"prompt_flops", cost.prompt_flops}};
  report["settings"] = {{"mode", stream ? "stream" : "resident"},
                        {"cold", o.cold},
                        {"threads", model->pool().num_threads()},
                        {"kernels", model->kernels().name},
                        {"verify_checksums", o.model.verify_checksums},
                        {"stream_io", runtime::StreamIoName(o.model.stream_io)},
                        {"drop_page_cache", o.model.drop_page_cache},
                        {"prompt_tokens", o.prompt_tokens},
                        {"generate_tokens", o.generate_tokens},
                        {"reps", o.reps},
                        {"probe_seconds", o.probe_seconds}};
  report["cpu"] = {{"model_name", CpuModelName()},
                   {"hardware_threads", std::thread::hardware_concurrency()}};

  ASSIGN_OR_RETURN(runtime::FileReadThroughput file_probe,
                   runtime::MeasureFileRead(cost.files, o.probe_seconds));
  if (!o.cold) {
    // One short untimed pass, as llama-bench's warm-up run: every block is
    // read once, so warm repetitions find the files in the page cache.
    runtime::Session warm(*model, 2);
    std::vector<float> logits;
    const int32_t one[1] = {1};
    RETURN_IF_ERROR(warm.Forward(one, runtime::LogitsRows::kLast, &logits));
  }
  std::vector<Rep> reps;
  for (int i = 0; i < o.reps; ++i) {
    ASSIGN_OR_RETURN(Rep r, RunRep(o, *model, cost));
    reps.push_back(r);
  }
  Summarize(o, cost, file_probe, stream, reps, &report);
  const runtime::LoaderStats loader = model->loader().stats();
  report["results"]["loader"] = {
      {"blocks_loaded", loader.blocks_loaded},
      {"mapped_loads", loader.mapped_loads},
      {"huge_checked_loads", loader.huge_checked_loads},
      {"page_cache_rebuilds", loader.page_cache_rebuilds}};
  std::ostringstream sink;
  std::ostream& out = o.out != nullptr ? *o.out : sink;
  PrintTable(report, out);

  BenchOutcome outcome;
  if (baseline.has_value()) {
    ASSIGN_OR_RETURN(
        std::vector<RatioChange> changes,
        CompareWithBaseline(*baseline, report, o.max_regression_pct,
                            o.baseline->string()));
    PrintComparison(changes, o.max_regression_pct, o.baseline->string(), out);
    json rows = json::array();
    for (const RatioChange& c : changes) {
      rows.push_back({{"ratio", c.name},
                      {"baseline", c.baseline},
                      {"now", c.now},
                      {"change_pct", c.change_pct},
                      {"regressed", c.regressed}});
      if (c.regressed) outcome.passed = false;
    }
    report["baseline"] = {{"path", o.baseline->string()},
                          {"max_regression_pct", o.max_regression_pct},
                          {"ratios", rows}};
    out << "result: " << (outcome.passed ? "PASS" : "FAIL (a ratio regressed)")
        << "\n";
  } else {
    report["baseline"] = nullptr;
  }
  report["passed"] = outcome.passed;
  if (o.json_out.has_value()) {
    RETURN_IF_ERROR(WriteStringToFile(*o.json_out, report.dump(2) + "\n"));
  }
  outcome.report = std::move(report);
  return outcome;
}

absl::StatusOr<std::vector<RatioChange>> CompareWithBaseline(
    const json& baseline, const json& now, double max_regression_pct,
    const std::string& baseline_name) {
  if (!baseline.is_object() || !baseline.contains("ratios") ||
      !baseline.contains("settings") || !baseline.contains("package")) {
    return absl::InvalidArgumentError(absl::StrCat(
        baseline_name,
        ": expected an llmverify --bench JSON report (objects \"settings\", "
        "\"package\", \"ratios\"), found none"));
  }
  // Ratios only compare between runs of the same kind.
  const std::pair<const char*, const char*> same[] = {
      {"settings", "mode"},          {"settings", "cold"},
      {"settings", "threads"},       {"settings", "kernels"},
      {"settings", "prompt_tokens"}, {"settings", "generate_tokens"},
      {"package", "matmul_dtype"}};
  for (const auto& [object, field] : same) {
    const json expected = now[object].value(field, json());
    const json found = baseline[object].value(field, json());
    if (expected != found) {
      return absl::InvalidArgumentError(absl::StrCat(
          baseline_name, ": ", object, ".", field, " is ", found.dump(),
          ", expected ", expected.dump(), " (the run being compared)"));
    }
  }
  std::vector<RatioChange> changes;
  for (const auto& [name, value] : now["ratios"].items()) {
    if (value.is_null()) continue;
    const json& base = baseline["ratios"].value(name, json());
    if (!base.is_object() || !base.contains("best")) {
      return absl::InvalidArgumentError(
          absl::StrCat(baseline_name, ": ratios.", name,
                       " is missing, expected a {\"best\": ...} object"));
    }
    RatioChange c;
    c.name = name;
    c.baseline = base["best"].get<double>();
    c.now = value["best"].get<double>();
    if (!(c.baseline > 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat(baseline_name, ": ratios.", name, ".best is ",
                       c.baseline, ", expected a positive value"));
    }
    c.change_pct = 100.0 * (c.now / c.baseline - 1.0);
    c.regressed = c.change_pct < -max_regression_pct;
    changes.push_back(c);
  }
  return changes;
}

}  // namespace llmpack::commands
