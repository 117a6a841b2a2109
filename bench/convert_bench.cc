// Conversion throughput and peak memory on a generated checkpoint far larger
// than one layer. Peak RSS is read from VmHWM after resetting it through
// /proc/self/clear_refs, so the generator's own memory does not count.
//
//   build/bench/convert_bench --benchmark_counters_tabular=true
//   LLMPACK_BENCH_LAYERS=32 build/bench/convert_bench   # bigger model
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "commands/convert_command.h"
#include "nlohmann/json.hpp"

namespace llmpack {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int64_t kHidden = 2048, kFfn = 5632, kHeads = 16, kKvHeads = 4,
                  kHeadDim = 128, kVocab = 32000;

int Layers() {
  const char* env = std::getenv("LLMPACK_BENCH_LAYERS");
  return env ? std::atoi(env) : 8;
}

struct Tensor {
  std::string name;
  std::vector<int64_t> shape;
  uint64_t bytes() const {
    uint64_t n = 2;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

// Writes a bf16 Llama checkpoint with pseudo-random weights, streaming.
void WriteCheckpoint(const fs::path& dir, int layers) {
  fs::create_directories(dir);
  std::vector<Tensor> tensors = {
      {"model.embed_tokens.weight", {kVocab, kHidden}},
      {"model.norm.weight", {kHidden}},
      {"lm_head.weight", {kVocab, kHidden}}};
  for (int l = 0; l < layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    for (auto [n, s] :
         std::vector<std::pair<std::string, std::vector<int64_t>>>{
             {"input_layernorm.weight", {kHidden}},
             {"post_attention_layernorm.weight", {kHidden}},
             {"self_attn.q_proj.weight", {kHeads * kHeadDim, kHidden}},
             {"self_attn.k_proj.weight", {kKvHeads * kHeadDim, kHidden}},
             {"self_attn.v_proj.weight", {kKvHeads * kHeadDim, kHidden}},
             {"self_attn.o_proj.weight", {kHidden, kHeads * kHeadDim}},
             {"mlp.gate_proj.weight", {kFfn, kHidden}},
             {"mlp.up_proj.weight", {kFfn, kHidden}},
             {"mlp.down_proj.weight", {kHidden, kFfn}}}) {
      tensors.push_back({p + n, s});
    }
  }
  json header = json::object();
  uint64_t offset = 0;
  for (const Tensor& t : tensors) {
    header[t.name] = {{"dtype", "BF16"},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + t.bytes()}}};
    offset += t.bytes();
  }
  const std::string h = header.dump();
  const uint64_t n = h.size();
  std::ofstream out(dir / "model.safetensors", std::ios::binary);
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << h;
  std::vector<uint16_t> chunk(1 << 20);
  std::mt19937 rng(1);
  for (auto& v : chunk) v = 0x3C00 | (rng() & 0x7F);  // small bf16 values
  for (uint64_t left = offset; left > 0;) {
    const uint64_t k = std::min<uint64_t>(left, chunk.size() * 2);
    out.write(reinterpret_cast<const char*>(chunk.data()), k);
    left -= k;
  }
  json config = {{"architectures", {"LlamaForCausalLM"}},
                 {"hidden_size", kHidden},
                 {"intermediate_size", kFfn},
                 {"num_hidden_layers", layers},
                 {"num_attention_heads", kHeads},
                 {"num_key_value_heads", kKvHeads},
                 {"vocab_size", kVocab},
                 {"rms_norm_eps", 1e-5},
                 {"rope_theta", 10000.0},
                 {"torch_dtype", "bfloat16"},
                 {"max_position_embeddings", 4096},
                 {"bos_token_id", 1},
                 {"eos_token_id", 2}};
  std::ofstream(dir / "config.json") << config.dump();
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
  WriteCheckpoint(root / "hf", Layers());
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
