// Forward-pass throughput: prefill/decode on a package given by
// LLMPACK_BENCH_PACKAGE (e.g. a converted trained-llama), when set. The
// kernels are in kernels_bench.cc and matmul_bench.cc; `llmverify --bench`
// reports the same figures with the hardware probes' ratios.
#include <cstdlib>
#include <vector>

#include "benchmark/benchmark.h"
#include "runtime/clock.h"
#include "runtime/kernels.h"
#include "runtime/model.h"

namespace llmpack::runtime {
namespace {

// args: stream (0) or resident (1); one prompt of 64 tokens, then decode.
void BM_PackageForward(benchmark::State& state) {
  const char* dir = std::getenv("LLMPACK_BENCH_PACKAGE");
  if (dir == nullptr) {
    state.SkipWithError("set LLMPACK_BENCH_PACKAGE to a package directory");
    return;
  }
  ModelOptions options;
  options.mode = state.range(0) == 0 ? LoadMode::kStream : LoadMode::kResident;
  auto model = Model::Open(dir, options);
  if (!model.ok()) {
    state.SkipWithError(std::string(model.status().message()).c_str());
    return;
  }
  std::vector<int32_t> prompt(64);
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = int32_t(i + 1);
  std::vector<float> logits;
  for (auto _ : state) {
    Session session(**model, 96);
    (void)session.Forward(prompt, LogitsRows::kLast, &logits);
    for (int i = 0; i < 16; ++i) {
      const int32_t one[] = {int32_t(i + 2)};
      (void)session.Forward(one, LogitsRows::kLast, &logits);
    }
  }
  state.SetItemsProcessed(state.iterations() * (64 + 16));
  state.SetLabel(state.range(0) == 0 ? "stream" : "resident");
}
BENCHMARK(BM_PackageForward)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

// llama-bench's pp512/tg128 on LLMPACK_BENCH_PACKAGE, resident: one
// 512-token prompt, then 128 tokens generated one at a time. args: threads.
// Counters: prompt and generate tokens/s.
void BM_PromptThenGenerate(benchmark::State& state) {
  const char* dir = std::getenv("LLMPACK_BENCH_PACKAGE");
  if (dir == nullptr) {
    state.SkipWithError("set LLMPACK_BENCH_PACKAGE to a package directory");
    return;
  }
  ModelOptions options;
  options.mode = LoadMode::kResident;
  options.threads = static_cast<int>(state.range(0));
  auto model = Model::Open(dir, options);
  if (!model.ok()) {
    state.SkipWithError(std::string(model.status().message()).c_str());
    return;
  }
  constexpr int kPrompt = 512, kGenerate = 128;
  std::vector<int32_t> prompt(kPrompt);
  for (int i = 0; i < kPrompt; ++i) prompt[i] = (i * 7919 + 1) % 1000 + 1;
  std::vector<float> logits;
  double prompt_s = 0, generate_s = 0;
  for (auto _ : state) {
    Session session(**model, kPrompt + kGenerate);
    const int64_t t0 = NowNs();
    (void)session.Forward(prompt, LogitsRows::kLast, &logits);
    const int64_t t1 = NowNs();
    for (int i = 0; i < kGenerate; ++i) {
      const int32_t one[] = {int32_t(i + 2)};
      (void)session.Forward(one, LogitsRows::kLast, &logits);
    }
    prompt_s += (t1 - t0) * 1e-9;
    generate_s += (NowNs() - t1) * 1e-9;
  }
  const double runs = static_cast<double>(state.iterations());
  state.counters["pp512_tok/s"] = runs * kPrompt / prompt_s;
  state.counters["tg128_tok/s"] = runs * kGenerate / generate_s;
  state.SetLabel((*model)->kernels().name);
}
BENCHMARK(BM_PromptThenGenerate)
    ->Arg(2)
    ->Unit(benchmark::kSecond)
    ->Iterations(2)
    ->UseRealTime();

}  // namespace
}  // namespace llmpack::runtime

BENCHMARK_MAIN();
