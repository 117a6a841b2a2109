// llmconvert: turns a Hugging Face checkpoint folder or an ONNX export into
// an llmpack package. Exit status: 0 success, 1 conversion failed, 2 usage.
#include <cstdio>
#include <iostream>
#include <string>

#include "CLI/CLI.hpp"
#include "commands/convert_command.h"
#include "llmpack/version.h"

int main(int argc, char** argv) {
  llmpack::commands::ConvertRequest request;
  llmpack::commands::TokenizerRequest tokenizer;
  bool tokenizer_only = false;
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
                 "package directory to create (must not exist unless "
                 "--force); with --tokenizer-only, the tokenizer.txt to write")
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
  auto* tok_group = app.add_option_group(
      "Tokenizer only",
      "Convert just the tokenizer (formats/tokenizer_format.md). Input is a "
      "checkpoint folder, a tokenizer.json, a sentencepiece tokenizer.model, "
      "or (with --tiktoken-pattern) a tiktoken ranks file.");
  tok_group->add_flag("--tokenizer-only", tokenizer_only,
                      "write only tokenizer.txt to the --output path");
  tok_group->add_option("--tiktoken-pattern", tokenizer.tiktoken_pattern,
                        "input is a tiktoken ranks file ('<base64> <rank>' "
                        "lines) split by this regex; 'llama3' selects Llama "
                        "3's");
  tok_group
      ->add_option("--special", tokenizer.special_tokens,
                   "tiktoken special token as TEXT=ID (repeatable)")
      ->allow_extra_args(false);
  ;
  tok_group->add_option("--bos-id", tokenizer.bos_id,
                        "tiktoken: id of the beginning-of-text token");
  tok_group->add_flag("--add-bos", tokenizer.add_bos,
                      "tiktoken: encoding with special tokens adds BOS");
  tok_group
      ->add_option("--stop-id", tokenizer.stop_ids,
                   "tiktoken: an id that ends generation (repeatable)")
      ->allow_extra_args(false);
  ;
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  if (tokenizer_only || !tokenizer.tiktoken_pattern.empty()) {
    tokenizer.input = input;
    tokenizer.output = output;
    absl::StatusOr<uint64_t> size =
        llmpack::commands::RunConvertTokenizer(tokenizer);
    if (!size.ok()) {
      std::fprintf(stderr, "llmconvert: error: %s\n",
                   std::string(size.status().message()).c_str());
      return 1;
    }
    if (json) {
      std::cout << nlohmann::json{{"output", output}, {"bytes", *size}}.dump(2)
                << "\n";
    } else if (!quiet) {
      std::cout << "wrote " << output << " (" << *size << " bytes)\n";
    }
    return 0;
  }
  request.input = input;
  request.output = output;
  request.progress = !quiet;

  absl::StatusOr<llmpack::commands::ConvertSummary> summary =
      llmpack::commands::RunConvert(request);
  if (!summary.ok()) {
    std::fprintf(stderr, "llmconvert: error: %s\n",
                 std::string(summary.status().message()).c_str());
    return 1;
  }
  if (json) {
    std::cout << llmpack::commands::ConvertSummaryJson(*summary).dump(2)
              << "\n";
  } else if (!quiet) {
    std::cout << llmpack::commands::ConvertSummaryText(*summary);
  }
  return 0;
}
