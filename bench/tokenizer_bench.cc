// Single-threaded encode throughput (bytes of input per second) on the
// shared corpus with the Llama 3 and Qwen 3 vocabularies, plus decode.
// Tokenizers are converted from ../shared/fixtures at start-up; set
// LLMPACK_SHARED_DIR to point elsewhere.
//   build-x/bench/tokenizer_bench --benchmark_filter=Encode
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "llmpack/file_util.h"
#include "tokenizer/convert_tokenizer.h"
#include "tokenizer/tokenizer.h"

namespace {

namespace fs = std::filesystem;
using llmpack::tokenizer::Tokenizer;

fs::path SharedDir() {
  const char* env = std::getenv("LLMPACK_SHARED_DIR");
  return env ? fs::path(env) : fs::path(LLMPACK_SHARED_DIR);
}

// Converted once per process and kept for all benchmarks.
const Tokenizer* GetTokenizer(const std::string& name) {
  static auto* cache = new std::map<std::string, std::unique_ptr<Tokenizer>>();
  auto it = cache->find(name);
  if (it != cache->end()) return it->second.get();
  const fs::path out =
      fs::temp_directory_path() /
      ("llmpack_bench_" + name + "_" + std::to_string(::getpid()) + ".txt");
  const absl::Status s = llmpack::tokenizer::ConvertTokenizerFile(
      SharedDir() / "fixtures" / "tokenizers" / (name + "_tokenizer.json"),
      out);
  std::unique_ptr<Tokenizer> tok;
  if (s.ok()) {
    auto loaded = Tokenizer::Load(out);
    if (loaded.ok()) tok = *std::move(loaded);
  }
  fs::remove(out);
  return (*cache)[name] = std::move(tok), (*cache)[name].get();
}

const std::string* GetCorpus(const std::string& file) {
  static auto* cache = new std::map<std::string, std::string>();
  auto it = cache->find(file);
  if (it != cache->end()) return &it->second;
  auto text = llmpack::ReadFileToString(SharedDir() / "corpus" / file);
  (*cache)[file] = text.ok() ? *text : "";
  return &(*cache)[file];
}

// The tokenizer and corpus text of a benchmark; false (and the benchmark
// marked skipped) when either is missing.
bool GetInputs(benchmark::State& state, const std::string& vocab,
               const std::string& file, const Tokenizer** tok,
               const std::string** text) {
  *tok = GetTokenizer(vocab);
  *text = GetCorpus(file);
  if (*tok == nullptr || (*text)->empty()) {
    state.SkipWithError("fixtures or corpus not found (LLMPACK_SHARED_DIR)");
    return false;
  }
  return true;
}

void BM_Encode(benchmark::State& state, const std::string& vocab,
               const std::string& file) {
  const Tokenizer* tok;
  const std::string* text;
  if (!GetInputs(state, vocab, file, &tok, &text)) return;
  size_t tokens = 0;
  for (auto _ : state) {
    const auto ids = tok->Encode(*text, /*add_special=*/false);
    if (!ids.ok()) {
      state.SkipWithError(std::string(ids.status().message()).c_str());
      return;
    }
    tokens = ids->size();
    benchmark::DoNotOptimize(ids->data());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(text->size()));
  state.counters["tokens"] = double(tokens);
}

void BM_Decode(benchmark::State& state, const std::string& vocab,
               const std::string& file) {
  const Tokenizer* tok;
  const std::string* text;
  if (!GetInputs(state, vocab, file, &tok, &text)) return;
  const auto ids = tok->Encode(*text, false);
  if (!ids.ok()) {
    state.SkipWithError(std::string(ids.status().message()).c_str());
    return;
  }
  for (auto _ : state) {
    auto decoded = tok->Decode(*ids);
    benchmark::DoNotOptimize(decoded);
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(text->size()));
}

BENCHMARK_CAPTURE(BM_Encode, llama3_en, "llama3", "fortunes_en.txt")
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Encode, llama3_shakespeare, "llama3", "shakespeare.txt")
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Encode, llama3_zh, "llama3", "fortunes_zh.txt")
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Encode, qwen3_en, "qwen3", "fortunes_en.txt")
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Encode, qwen3_zh, "qwen3", "fortunes_zh.txt")
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Decode, llama3_en, "llama3", "fortunes_en.txt")
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
