// Conversion throughput and peak memory on a generated checkpoint far larger
// than one layer. Peak RSS is read from VmHWM after resetting it through
// /proc/self/clear_refs, so the generator's own memory does not count.
//
//   build/bench/convert_bench --benchmark_counters_tabular=true
//   LLMPACK_BENCH_LAYERS=32 build/bench/convert_bench   # bigger model
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "benchmark/benchmark.h"
#include "commands/convert_command.h"

namespace llmpack {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kHidden = 2048, kFfn = 5632, kHeads = 16, kKvHeads = 4,
                  kHeadDim = 128, kVocab = 32000;

int Layers() {
  const char* env = std::getenv("LLMPACK_BENCH_LAYERS");
  return env ? std::atoi(env) : 8;
}

// A bf16 Llama checkpoint with pseudo-random weights (llmsynth's generator).
absl::Status WriteCheckpoint(const fs::path& dir, int layers) {
  convert::SyntheticOptions o;
  o.output = dir;
  o.force = true;
  o.shape.hidden_size = kHidden;
  o.shape.ffn_size = kFfn;
  o.shape.num_heads = kHeads;
  o.shape.num_kv_heads = kKvHeads;
  o.shape.head_dim = kHeadDim;
  o.shape.vocab_size = kVocab;
  o.shape.num_layers = layers;
  o.shape.tie_word_embeddings = false;
  o.shape.rope_type = "default";
  o.shape.rope_theta = 10000.0;
  o.shape.max_positions = 4096;
  return commands::RunSynthesize(o).status();
}

double PeakRssMb() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024;
  }
  return 0;
}

void BM_ConvertSyntheticLlama(benchmark::State& state) {
  const fs::path root = fs::temp_directory_path() / "llmpack_convert_bench";
  fs::remove_all(root);
  if (absl::Status written = WriteCheckpoint(root / "hf", Layers());
      !written.ok()) {
    state.SkipWithError(std::string(written.message()).c_str());
    return;
  }
  const double source_mb =
      fs::file_size(root / "hf" / "model.safetensors") / 1e6;
  double peak = 0, seconds = 0;
  for (auto _ : state) {
    std::ofstream("/proc/self/clear_refs") << "5";  // reset VmHWM
    const double before = PeakRssMb();
    auto result =
        commands::RunConvert({root / "hf", root / "pkg", "keep", true, false});
    if (!result.ok()) {
      state.SkipWithError(std::string(result.status().message()).c_str());
      break;
    }
    seconds += result->seconds;
    peak = std::max(peak, PeakRssMb() - before);
  }
  state.counters["source_MB"] = source_mb;
  state.counters["MB_per_s"] = source_mb * state.iterations() / seconds;
  state.counters["peak_rss_MB_over_baseline"] = peak;
  state.counters["layer_MB"] =
      (2.0 * kHidden * kHeads * kHeadDim + 2.0 * kHidden * kKvHeads * kHeadDim +
       3.0 * kHidden * kFfn) *
      2 / 1e6;
  fs::remove_all(root);
}
BENCHMARK(BM_ConvertSyntheticLlama)->Unit(benchmark::kSecond)->Iterations(2);

}  // namespace
}  // namespace llmpack

BENCHMARK_MAIN();
