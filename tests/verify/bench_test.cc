// llmverify --bench on the bundled trained-llama: every documented JSON
// field is present and sane (positive figures, stddev >= 0, one value per
// repetition), in resident, warm stream and cold stream mode; and the
// baseline comparison flags a ratio that dropped past the threshold. No
// wall-clock thresholds: the figures depend on the machine.
#include <string>

#include "commands/bench_command.h"
#include "gtest/gtest.h"
#include "llmpack/json_file.h"
#include "runtime/fixture_packages.h"
#include "support/test_paths.h"

namespace llmpack::commands {
namespace {

using ::llmpack::testing::FixturePackages;
using nlohmann::json;

constexpr int kReps = 2;

absl::StatusOr<BenchOutcome> Bench(runtime::LoadMode mode, bool cold,
                                   const std::filesystem::path& json_out) {
  BenchRequest request;
  request.package = FixturePackages::Bundled("trained-llama");
  request.model.mode = mode;
  request.model.threads = 2;
  request.prompt_tokens = 16;
  request.generate_tokens = 4;
  request.reps = kReps;
  request.cold = cold;
  request.probe_seconds = 0.02;
  request.bandwidth_probe_bytes = uint64_t{16} << 20;
  request.json_out = json_out;
  return RunBench(request);
}

// A {"mean", "stddev", "values"} summary of positive figures.
void ExpectSummary(const json& s, const std::string& name) {
  SCOPED_TRACE(name);
  ASSERT_TRUE(s.is_object()) << s.dump();
  EXPECT_GT(s["mean"].get<double>(), 0);
  EXPECT_GE(s["stddev"].get<double>(), 0);
  ASSERT_EQ(s["values"].size(), kReps);
  for (const json& v : s["values"]) EXPECT_GT(v.get<double>(), 0);
}

// The fields of docs/llmverify.md, "Benchmark".
void ExpectDocumentedFields(const json& r, bool stream) {
  EXPECT_EQ(r["tool"], "llmverify");
  EXPECT_TRUE(r["version"].is_string());
  for (const char* f :
       {"block_bytes", "lm_bytes", "weight_bytes_per_token", "prompt_flops",
        "num_layers", "hidden_size", "vocab_size"}) {
    EXPECT_GT(r["package"][f].get<double>(), 0) << f;
  }
  for (const char* f : {"path", "family", "weights_dtype", "matmul_dtype"}) {
    EXPECT_TRUE(r["package"][f].is_string()) << f;
  }
  const json& s = r["settings"];
  EXPECT_EQ(s["mode"], stream ? "stream" : "resident");
  EXPECT_TRUE(s["cold"].is_boolean());
  EXPECT_EQ(s["threads"], 2);
  EXPECT_TRUE(s["kernels"].is_string());
  EXPECT_TRUE(s["verify_checksums"].is_boolean());
  EXPECT_EQ(s["prompt_tokens"], 16);
  EXPECT_EQ(s["generate_tokens"], 4);
  EXPECT_EQ(s["reps"], kReps);
  EXPECT_GT(s["probe_seconds"].get<double>(), 0);
  EXPECT_TRUE(r["cpu"]["model_name"].is_string());
  EXPECT_GT(r["cpu"]["hardware_threads"].get<int>(), 0);

  const json& p = r["probes"];
  for (const char* f : {"read_bandwidth_bytes_per_second", "f32_fma_flops",
                        "bf16_dot_flops", "int8_dot_ops"}) {
    ExpectSummary(p[f], f);
  }
  for (const char* f : {"f32_fma", "bf16_dot", "int8_dot"}) {
    EXPECT_FALSE(p["isa"][f].get<std::string>().empty()) << f;
  }
  EXPECT_EQ(r["package"]["matmul_dtype"], "bf16");  // trained-llama's
  EXPECT_EQ(p["prefill_peak"], "bf16_dot");
  EXPECT_GT(p["file_read"]["cold_bytes_per_second"].get<double>(), 0);
  EXPECT_GT(p["file_read"]["warm_bytes_per_second"].get<double>(), 0);
  EXPECT_GT(p["file_read"]["bytes"].get<double>(), 0);

  const json& res = r["results"];
  EXPECT_EQ(res["pp"]["tokens"], 16);
  ExpectSummary(res["pp"]["tokens_per_second"], "pp tokens_per_second");
  ExpectSummary(res["pp"]["flops_per_second"], "pp flops_per_second");
  EXPECT_EQ(res["tg"]["tokens"], 4);
  ExpectSummary(res["tg"]["tokens_per_second"], "tg tokens_per_second");
  ExpectSummary(res["tg"]["weight_bytes_per_second"], "tg weight bytes/s");
  EXPECT_GT(res["peak_rss_bytes"].get<double>(), 0);
  const json& wait = res["prefetch_wait_ms"];
  EXPECT_GE(wait["mean"].get<double>(), 0);
  EXPECT_GE(wait["stddev"].get<double>(), 0);
  EXPECT_EQ(wait["values"].size(), kReps);

  for (const char* f : {"prefill_compute", "decode_bandwidth"}) {
    ExpectSummary(r["ratios"][f], f);
    EXPECT_GT(r["ratios"][f]["best"].get<double>(), 0) << f;
  }
  if (stream) {
    ExpectSummary(res["tg"]["stream_read_bytes_per_second"], "stream bytes/s");
    ExpectSummary(r["ratios"]["stream_read"], "stream_read");
    EXPECT_GT(r["ratios"]["stream_read"]["best"].get<double>(), 0);
  } else {
    EXPECT_TRUE(res["tg"]["stream_read_bytes_per_second"].is_null());
    EXPECT_TRUE(r["ratios"]["stream_read"].is_null());
  }
  EXPECT_TRUE(r["baseline"].is_null());
  EXPECT_EQ(r["passed"], true);
}

TEST(BenchTest, ResidentReportHasEveryDocumentedField) {
  testing::ScopedTempDir dir;
  auto outcome =
      Bench(runtime::LoadMode::kResident, false, dir.path() / "b.json");
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  ExpectDocumentedFields(outcome->report, /*stream=*/false);
  // --json writes the same report.
  auto written = ReadJsonFile(dir.path() / "b.json");
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(*written, outcome->report);
}

TEST(BenchTest, WarmAndColdStreamReportsHaveEveryDocumentedField) {
  testing::ScopedTempDir dir;
  for (bool cold : {false, true}) {
    auto outcome =
        Bench(runtime::LoadMode::kStream, cold, dir.path() / "s.json");
    ASSERT_TRUE(outcome.ok()) << outcome.status();
    ExpectDocumentedFields(outcome->report, /*stream=*/true);
    EXPECT_EQ(outcome->report["settings"]["cold"], cold);
  }
}

TEST(BenchTest, ColdNeedsStreamMode) {
  testing::ScopedTempDir dir;
  auto outcome =
      Bench(runtime::LoadMode::kResident, true, dir.path() / "x.json");
  ASSERT_FALSE(outcome.ok());
  EXPECT_NE(outcome.status().message().find("--cold needs --stream"),
            std::string::npos);
}

json MiniReport(double decode, double prefill) {
  return {{"settings",
           {{"mode", "resident"},
            {"cold", false},
            {"threads", 2},
            {"kernels", "k"},
            {"prompt_tokens", 512},
            {"generate_tokens", 128}}},
          {"package", {{"matmul_dtype", "bf16"}}},
          {"ratios",
           {{"decode_bandwidth", {{"best", decode}}},
            {"prefill_compute", {{"best", prefill}}},
            {"stream_read", nullptr}}}};
}

TEST(BenchTest, BaselineComparisonFlagsOnlyDropsPastTheThreshold) {
  const json now = MiniReport(0.5, 0.2);
  // A 30% slower run than the baseline: every ratio fails a 15% gate.
  auto slower = CompareWithBaseline(MiniReport(0.65, 0.26), now, 15, "base");
  ASSERT_TRUE(slower.ok()) << slower.status();
  ASSERT_EQ(slower->size(), 2);
  for (const RatioChange& c : *slower) {
    EXPECT_TRUE(c.regressed) << c.name;
    EXPECT_NEAR(c.change_pct, 100 * (1 / 1.3 - 1), 1e-9);
  }
  // 10% down on one ratio, up on the other: no regression.
  auto close = CompareWithBaseline(MiniReport(0.5 / 0.9, 0.1), now, 15, "base");
  ASSERT_TRUE(close.ok()) << close.status();
  for (const RatioChange& c : *close) EXPECT_FALSE(c.regressed) << c.name;
}

TEST(BenchTest, BaselineOfOtherSettingsIsAnError) {
  json base = MiniReport(0.5, 0.2);
  base["settings"]["mode"] = "stream";
  auto r = CompareWithBaseline(base, MiniReport(0.5, 0.2), 15, "base.json");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("base.json: settings.mode is \"stream\""),
            std::string::npos)
      << r.status();
  auto not_bench = CompareWithBaseline(json{{"tool", "x"}},
                                       MiniReport(0.5, 0.2), 15, "other.json");
  EXPECT_FALSE(not_bench.ok());
}

}  // namespace
}  // namespace llmpack::commands
