// llmquant: quantizes a float llmpack package to int4 or int8 (every block
// Linear and the output projection; optionally the embedding to int8).
// Exit status: 0 success, 1 quantization failed, 2 bad usage.
#include <cstdio>
#include <iostream>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "llmpack/staging.h"
#include "llmpack/version.h"
#include "commands/quant_command.h"

namespace {

using llmpack::quantize::TensorTarget;

TensorTarget ParseTarget(const std::string& s) {
  if (s == "int4") return TensorTarget::kQ4;
  if (s == "int8") return TensorTarget::kQ8;
  return TensorTarget::kKeep;
}

}  // namespace

int main(int argc, char** argv) {
  llmpack::quantize::QuantizeOptions o;
  std::string input, output, group, lm, embed = "keep", scale = "f16";
  std::string json_path, calib;
  bool int4 = false, int8 = false, sym = false, asym = false, quiet = false;

  CLI::App app{
      "llmquant: quantize an llmpack package to int4 or int8.\n"
      "Every block Linear (q, k, v, o, gate, up, down) and the output\n"
      "projection are quantized in groups along each row; norms and biases\n"
      "stay float; the embedding is kept unless --embed int8. The package is\n"
      "written to a temporary folder beside the output and renamed into\n"
      "place only when complete. See docs/quantization.md.\n\n"
      "Exit status: 0 success, 1 quantization failed, 2 bad usage."};
  app.set_version_flag("--version",
                       std::string("llmquant ") + llmpack::kToolVersion);
  app.add_option("package", input, "float package to quantize")->required();
  app.add_option("-o,--output", output, "package directory to create")
      ->required();
  auto* i4 = app.add_flag("--int4", int4, "4-bit codes (default group 32)");
  auto* i8 = app.add_flag("--int8", int8, "8-bit codes (default group 128)");
  i4->excludes(i8);
  app.add_option("--group", group,
                 "group size along each row: 32, 64, 128 or row "
                 "(default 32 for int4, 128 for int8)");
  auto* fs = app.add_flag("--sym", sym, "symmetric: no zero points");
  auto* fa =
      app.add_flag("--asym", asym,
                   "asymmetric: a zero point per group (default for int4; int8 "
                   "defaults to --sym)");
  fs->excludes(fa);
  app.add_option("--scale-dtype", scale, "dtype of the group scales")
      ->check(CLI::IsMember({"f16", "bf16"}))
      ->capture_default_str();
  app.add_option("--lm", lm,
                 "output projection: int4, int8 or keep (default: as the "
                 "blocks)")
      ->check(CLI::IsMember({"int4", "int8", "keep"}));
  app.add_option("--embed", embed, "embedding: int8 or keep")
      ->check(CLI::IsMember({"int8", "keep"}))
      ->capture_default_str();
  app.add_option("--method", o.method,
                 "rtn, search, weighted, gptq, or auto (gptq with --calib, "
                 "search without)")
      ->capture_default_str();
  app.add_option("--calib", calib,
                 "calibration text (training-like text, never evaluation "
                 "text), tokenized with the package's tokenizer");
  app.add_option("--calib-tokens", o.calibration_tokens,
                 "most calibration tokens used (windows spread over the file)")
      ->capture_default_str();
  app.add_option("--threads", o.threads, "threads (0: all)")
      ->capture_default_str();
  app.add_option("--json", json_path,
                 "write the per-tensor report as JSON to FILE ('-': stdout)");
  app.add_flag("--force", o.force,
               "replace an existing output; re-quantize a quantized input");
  app.add_flag("-q,--quiet", quiet, "no progress line and no report");
  try {
    app.parse(argc, argv);
    if (!int4 && !int8) {
      throw CLI::RequiredError("--int4 or --int8");
    }
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  o.input_dir = input;
  o.output_dir = output;
  o.dtype = int8 ? llmpack::DType::kQ8 : llmpack::DType::kQ4;
  if (!group.empty()) {
    int64_t g = 0;
    if (group == "row") {
      g = llmpack::quantize::kPerRowGroup;
    } else if (!absl::SimpleAtoi(group, &g)) {
      std::fprintf(stderr,
                   "llmquant: error: --group must be 32, 64, 128 or row, "
                   "found \"%s\"\n",
                   group.c_str());
      return 2;
    }
    o.group_size = g;
  }
  if (sym || asym) o.zero_point = asym;
  o.scale_dtype =
      scale == "bf16" ? llmpack::DType::kBF16 : llmpack::DType::kF16;
  if (!lm.empty()) o.lm = ParseTarget(lm);
  o.embedding = ParseTarget(embed);
  o.calibration_file = calib;
  o.show_progress = !quiet;

  absl::StatusOr<llmpack::quantize::QuantizeResult> result =
      llmpack::commands::RunQuantize(o);
  if (!result.ok()) {
    std::fprintf(stderr, "llmquant: error: %s\n",
                 std::string(result.status().message()).c_str());
    return 1;
  }
  const std::string report = llmpack::commands::QuantizeReportJson(*result).dump(2);
  if (json_path == "-") {
    std::cout << report << "\n";
  } else {
    if (!json_path.empty()) {
      const absl::Status written =
          llmpack::WriteStringToFile(json_path, report + "\n");
      if (!written.ok()) {
        std::fprintf(stderr, "llmquant: error: %s\n",
                     std::string(written.message()).c_str());
        return 1;
      }
    }
    if (!quiet) std::cout << llmpack::commands::QuantizeReportText(*result);
  }
  return 0;
}
