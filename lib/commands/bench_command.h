// `llmverify <pkg> --bench` as one library call, in the style of
// llama-bench: a prompt of `prompt_tokens` (pp512) then `generate_tokens`
// generated one at a time (tg128) in the same session, repeated `reps`
// times, reported as mean ± sample standard deviation, each next to the
// in-run hardware probes of runtime/probes.h measured in the same process
// just before every repetition:
//   decode_bandwidth = weight bytes read per generated token x tokens/s
//                      / memory read bandwidth probe
//   prefill_compute  = prompt FLOP/s / compute peak of the weights' kind
//                      (int8 dot for q4/q8, bf16 dot for bf16, f32 FMA)
//   stream_read      = block bytes the loader read per second of decode
//                      / file-read probe (cold with `cold`, else warm);
//                      stream mode only
// plus peak RSS (VmHWM, the probes' buffers excluded) and the loader's
// prefetch wait. Fields: docs/llmverify.md, "Benchmark".
//
// With a baseline (an earlier --bench JSON of the same settings) every
// ratio is compared with the baseline's mean; a ratio that dropped by more
// than `max_regression_pct` percent fails the run.
//
// Single-threaded entry point (the model and the probes use the model's
// thread pool); console text only on `out`.
#ifndef LLMPACK_COMMANDS_BENCH_COMMAND_H_
#define LLMPACK_COMMANDS_BENCH_COMMAND_H_

#include <cstdint>
#include <filesystem>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "runtime/model.h"
#include "runtime/probes.h"

namespace llmpack::commands {

struct BenchRequest {
  std::filesystem::path package;
  runtime::ModelOptions model;  // mode, threads, kernels, checksums
  int64_t prompt_tokens = 512;
  int64_t generate_tokens = 128;
  int reps = 3;
  // Evict the package's files from the page cache before every repetition,
  // and in stream mode before every generated token too, so block reads come
  // from storage. Stream mode only (mapped pages cannot be evicted).
  bool cold = false;
  double probe_seconds = 0.3;  // per probe and repetition
  // Buffer of the bandwidth probe (tests use less; far smaller than the
  // last-level cache it measures the cache instead).
  uint64_t bandwidth_probe_bytes = runtime::kBandwidthProbeBytes;
  std::optional<std::filesystem::path> json_out;
  std::optional<std::filesystem::path> baseline;
  double max_regression_pct = 15;
  std::ostream* out = nullptr;  // the table (may be null)
};

struct BenchOutcome {
  nlohmann::json report;
  bool passed = true;  // false only when a ratio regressed past the baseline
};

absl::StatusOr<BenchOutcome> RunBench(const BenchRequest& request);

struct RatioChange {
  std::string name;  // a key of the report's "ratios"
  double baseline = 0;
  double now = 0;
  double change_pct = 0;  // 100 * (now / baseline - 1)
  bool regressed = false;
};

// Compares the "ratios" means of two --bench reports. Errors (naming
// `baseline_name`, the field, what was expected and found) when the
// baseline is not a bench report or was taken with other settings (mode,
// cold, threads, kernels, token counts, weights dtype).
absl::StatusOr<std::vector<RatioChange>> CompareWithBaseline(
    const nlohmann::json& baseline, const nlohmann::json& now,
    double max_regression_pct, const std::string& baseline_name);

}  // namespace llmpack::commands

#endif  // LLMPACK_COMMANDS_BENCH_COMMAND_H_
