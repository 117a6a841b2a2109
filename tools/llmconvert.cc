// llmconvert: turns a Hugging Face checkpoint folder or an ONNX export into
// an llmpack package. Exit status: 0 success, 1 conversion failed, 2 usage.
#include <cstdio>
#include <iostream>
#include <string>

#include "CLI/CLI.hpp"
#include "commands/convert_command.h"
#include "llmpack/version.h"

int main(int argc, char** argv) {
  llmpack::ConvertRequest request;
  bool quiet = false;
  bool json = false;
  std::string input, output;

  CLI::App app{
      "llmconvert: split an LLM checkpoint into an llmpack package\n"
      "(manifest.json, tokenizer, disk embedding, one file per transformer\n"
      "block, lm file). Input is a Hugging Face folder (config.json +\n"
      "model.safetensors or sharded model.safetensors.index.json) or an .onnx\n"
      "file. Output is written to a temporary folder beside <package-dir> and\n"
      "renamed into place only when complete.\n\n"
      "Exit status: 0 success, 1 conversion failed, 2 bad usage."};
  app.set_version_flag("--version",
                       std::string("llmconvert ") + llmpack::kToolVersion);
  app.add_option("input", input,
                 "Hugging Face checkpoint folder or ONNX model file")
      ->required();
  app.add_option("-o,--output", output,
                 "package directory to create (must not exist unless --force)")
      ->required();
  app.add_option("--dtype", request.dtype,
                 "weight dtype in the package: keep (as in the source), f32, "
                 "f16 or bf16")
      ->check(CLI::IsMember({"keep", "f32", "f16", "bf16"}))
      ->capture_default_str();
  app.add_flag("--force", request.force,
               "replace an existing package at the output path");
  app.add_flag("-q,--quiet", quiet, "no progress line and no summary");
  app.add_flag("--json", json,
               "print a JSON summary on stdout instead of the text summary");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  request.input = input;
  request.output = output;
  request.progress = !quiet;

  absl::StatusOr<llmpack::ConvertSummary> summary =
      llmpack::RunConvert(request);
  if (!summary.ok()) {
    std::fprintf(stderr, "llmconvert: error: %s\n",
                 std::string(summary.status().message()).c_str());
    return 1;
  }
  if (json) {
    std::cout << llmpack::ConvertSummaryJson(*summary).dump(2) << "\n";
  } else if (!quiet) {
    std::cout << llmpack::ConvertSummaryText(*summary);
  }
  return 0;
}
