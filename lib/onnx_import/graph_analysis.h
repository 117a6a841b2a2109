// Recovers a decoder-only transformer (Llama / Qwen2 / Qwen3 family) from an
// ONNX graph by its dataflow, not by tensor names: exporters rename or drop
// names (torch dynamo turns every Linear into a MatMul with an anonymous
// transposed constant). See docs/onnx_import.md for the patterns matched.
// Pure function of the model; thread-compatible.
#ifndef LLMPACK_ONNX_IMPORT_GRAPH_ANALYSIS_H_
#define LLMPACK_ONNX_IMPORT_GRAPH_ANALYSIS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "onnx_import/graph.h"
#include "onnx_import/onnx_model.h"

namespace llmpack::onnx_import {

// A Linear weight stored as ONNX Runtime MatMulNBits blocks (B holds
// [out][block][packed codes]); dequantized when read.
struct NBitsWeight {
  std::string node;         // for error messages
  std::string scales;       // constant, [out * blocks]
  std::string zero_points;  // constant, or empty: 2^(bits-1)
  int64_t bits = 4;
  int64_t block_size = 0;
};

// A weight: which constant holds it and how to bring it to the Hugging Face
// layout ([out, in] for Linear weights, [n] for vectors).
struct WeightRef {
  std::string value;           // constant (initializer) name; empty if absent
  bool transpose = false;      // stored [in, out]: transpose when reading
  std::vector<int64_t> shape;  // Hugging Face shape after orientation
  std::optional<NBitsWeight> nbits;  // set for MatMulNBits weights
  // A band of rows of a packed weight (fused qkv / gate_up): the rows
  // [row_offset, row_offset + shape[0]) of a tensor with `packed_rows` rows
  // in Hugging Face layout. packed_rows 0: the whole tensor.
  int64_t row_offset = 0;
  int64_t packed_rows = 0;

  bool present() const { return !value.empty(); }
};

struct LayerWeights {
  WeightRef input_norm, q, k, v, q_bias, k_bias, v_bias, q_norm, k_norm, o,
      post_norm, gate, up, down;
};

// What the graph itself determines about the configuration.
struct GraphFacts {
  int64_t hidden_size = 0;
  int64_t vocab_size = 0;
  int64_t ffn_size = 0;
  int64_t q_dim = 0;          // num_heads * head_dim
  int64_t kv_dim = 0;         // num_kv_heads * head_dim
  int64_t head_dim = 0;       // 0 when no reshape / norm / RoPE shows it
  std::string head_dim_from;  // which evidence gave head_dim
  double norm_eps = 0;
  // RoPE inverse frequencies baked into the graph; empty if none found.
  std::vector<double> inv_freq;
  int64_t rope_table_rows = 0;  // positions of cos/sin tables, if used
  std::string rope_note;        // why no frequencies were found
  bool tied = false;            // lm_head reads the embedding table itself
  bool qkv_bias = false;
  bool qk_norm = false;
};

struct RecoveredModel {
  WeightRef embedding, final_norm, lm_head;
  std::vector<LayerWeights> layers;
  GraphFacts facts;
};

// Errors name the layer, what was found and what was expected, e.g.
// "layer 1: found 2 MatMuls reading the attention norm output 'x', expected
// 3 (q, k and v projections)".
absl::StatusOr<RecoveredModel> RecoverModel(const Graph& graph);

}  // namespace llmpack::onnx_import

#endif  // LLMPACK_ONNX_IMPORT_GRAPH_ANALYSIS_H_
