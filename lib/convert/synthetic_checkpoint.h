// Writes a Hugging Face checkpoint folder (config.json + model.safetensors,
// optionally a tokenizer) with seeded pseudo-random weights of any shape and
// supported family, so speed and memory can be measured at realistic sizes
// with nothing downloaded. The defaults are Llama-3.2-1B's shapes.
//
// Values: Linear weights ~ N(0, init_std^2) (an Irwin-Hall approximation),
// norm weights 1 + N(0, 0.1^2), biases N(0, init_std^2); the same seed and
// shape give the same bytes on every machine.
//
// Thread safety: WriteSyntheticCheckpoint is a pure function of its options
// and the file system; it writes into a staging folder renamed into place.
#ifndef LLMPACK_CONVERT_SYNTHETIC_CHECKPOINT_H_
#define LLMPACK_CONVERT_SYNTHETIC_CHECKPOINT_H_

#include <cstdint>
#include <filesystem>
#include <string>

#include "absl/status/statusor.h"
#include "llmpack/dtype.h"

namespace llmpack::convert {

struct SyntheticShape {
  std::string family = "llama";  // llama, mistral, qwen2 (qkv bias), qwen3
  int64_t hidden_size = 2048;
  int64_t num_layers = 16;
  int64_t num_heads = 32;
  int64_t num_kv_heads = 8;
  int64_t head_dim = 64;
  int64_t ffn_size = 8192;
  int64_t vocab_size = 128256;
  bool tie_word_embeddings = true;
  // RoPE: "llama3" scaling as in Llama 3.x, or "default".
  std::string rope_type = "llama3";
  double rope_theta = 500000.0;
  double rope_factor = 32.0;
  int64_t max_positions = 131072;
};

// Named presets: "llama-3.2-1b" (the default shape), "llama-3-8b"
// (hidden 4096, 32 layers, ffn 14336, untied), "tiny" (a few MB, for tests).
absl::StatusOr<SyntheticShape> SyntheticPreset(const std::string& name);

struct SyntheticOptions {
  std::filesystem::path output;
  SyntheticShape shape;
  DType dtype = DType::kBF16;  // f32, f16 or bf16
  uint64_t seed = 1;
  float init_std = 0.02f;
  // A tokenizer.json (or a folder holding tokenizer.json and optionally
  // tokenizer_config.json) copied into the checkpoint; empty: none.
  std::filesystem::path tokenizer;
  bool force = false;  // replace an existing output folder
  bool progress = false;
};

struct SyntheticResult {
  uint64_t parameters = 0;
  uint64_t bytes = 0;  // model.safetensors
  double seconds = 0;
};

absl::StatusOr<SyntheticResult> WriteSyntheticCheckpoint(
    const SyntheticOptions& options);

}  // namespace llmpack::convert

#endif  // LLMPACK_CONVERT_SYNTHETIC_CHECKPOINT_H_
