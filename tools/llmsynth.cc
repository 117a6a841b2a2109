// llmsynth: writes a Hugging Face checkpoint folder with seeded random
// weights (any supported family and shape; Llama-3.2-1B shapes by default) so
// conversion, quantization and speed can be measured at realistic sizes with
// nothing downloaded. Exit status: 0 success, 1 failure, 2 bad usage.
#include <cstdio>
#include <iostream>
#include <string>

#include "CLI/CLI.hpp"
#include "commands/convert_command.h"
#include "llmpack/version.h"
#include "nlohmann/json.hpp"

int main(int argc, char** argv) {
  namespace cv = llmpack::convert;
  cv::SyntheticOptions o;
  std::string preset = "llama-3.2-1b", dtype = "bf16", output, tokenizer;
  bool quiet = false, json = false;
  int64_t hidden = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0,
          ffn = 0, vocab = 0;
  std::string family, tie;

  CLI::App app{
      "llmsynth: write a Hugging Face checkpoint folder (config.json +\n"
      "model.safetensors) with seeded pseudo-random weights, for measuring\n"
      "llmconvert, llmquant and llmverify at realistic sizes. A preset gives\n"
      "the shape; each shape option overrides one field of it. The same seed\n"
      "and shape give the same bytes on every machine.\n\n"
      "Exit status: 0 success, 1 failure, 2 bad usage."};
  app.set_version_flag("--version",
                       std::string("llmsynth ") + llmpack::kToolVersion);
  app.add_option("-o,--output", output, "checkpoint folder to create")
      ->required();
  app.add_option("--preset", preset,
                 "llama-3.2-1b (hidden 2048, 16 layers, 32/8 heads, ffn "
                 "8192, vocab 128256, tied), llama-3-8b (hidden 4096, 32 "
                 "layers, ffn 14336, untied) or tiny")
      ->capture_default_str();
  app.add_option("--family", family, "llama, mistral, qwen2 or qwen3");
  app.add_option("--hidden", hidden, "hidden size");
  app.add_option("--layers", layers, "transformer blocks");
  app.add_option("--heads", heads, "attention heads");
  app.add_option("--kv-heads", kv_heads, "key/value heads");
  app.add_option("--head-dim", head_dim, "dimension of one head");
  app.add_option("--ffn", ffn, "MLP intermediate size");
  app.add_option("--vocab", vocab, "vocabulary size");
  app.add_option("--tie", tie, "tie the output projection to the embedding")
      ->check(CLI::IsMember({"yes", "no"}));
  app.add_option("--dtype", dtype, "f32, f16 or bf16")
      ->check(CLI::IsMember({"f32", "f16", "bf16"}))
      ->capture_default_str();
  app.add_option("--seed", o.seed, "random seed")->capture_default_str();
  app.add_option("--tokenizer", tokenizer,
                 "tokenizer.json (or a folder with one) to copy in");
  app.add_flag("--force", o.force, "replace an existing output folder");
  app.add_flag("-q,--quiet", quiet, "no progress line and no summary");
  app.add_flag("--json", json, "print a JSON summary on stdout");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  auto shape = cv::SyntheticPreset(preset);
  if (!shape.ok()) {
    std::fprintf(stderr, "llmsynth: error: %s\n",
                 std::string(shape.status().message()).c_str());
    return 2;
  }
  o.shape = *shape;
  if (!family.empty()) o.shape.family = family;
  for (auto [value, field] : {std::pair{hidden, &o.shape.hidden_size},
                              {layers, &o.shape.num_layers},
                              {heads, &o.shape.num_heads},
                              {kv_heads, &o.shape.num_kv_heads},
                              {head_dim, &o.shape.head_dim},
                              {ffn, &o.shape.ffn_size},
                              {vocab, &o.shape.vocab_size}}) {
    if (value != 0) *field = value;
  }
  if (!tie.empty()) o.shape.tie_word_embeddings = tie == "yes";
  o.dtype = *llmpack::ParseDType(dtype);
  o.output = output;
  o.tokenizer = tokenizer;
  o.progress = !quiet;
  auto result = llmpack::commands::RunSynthesize(o);
  if (!result.ok()) {
    std::fprintf(stderr, "llmsynth: error: %s\n",
                 std::string(result.status().message()).c_str());
    return absl::IsInvalidArgument(result.status()) ? 2 : 1;
  }
  if (json) {
    std::cout << nlohmann::json{{"output", output},
                                {"parameters", result->parameters},
                                {"bytes", result->bytes},
                                {"seconds", result->seconds}}
                     .dump(2)
              << "\n";
  } else if (!quiet) {
    std::printf("wrote %s: %.3fB parameters, %.2f GB in %.1f s\n",
                output.c_str(), result->parameters / 1e9, result->bytes / 1e9,
                result->seconds);
  }
  return 0;
}
