// Locates the RoPE inverse frequencies in an ONNX graph: either a constant
// vector multiplied with positions before Cos/Sin (what torch exporters
// emit), or precomputed cos/sin tables (older exports, ONNX Runtime's
// RotaryEmbedding / GroupQueryAttention caches). Pure function of the graph.
#ifndef LLMPACK_ONNX_IMPORT_ROPE_GRAPH_H_
#define LLMPACK_ONNX_IMPORT_ROPE_GRAPH_H_

#include <cstdint>
#include <string>
#include <vector>

#include "onnx_import/graph.h"

namespace llmpack::onnx_import {

struct RopeEvidence {
  std::vector<double> inv_freq;  // empty when none was found
  int64_t table_rows = 0;        // positions covered by cos/sin tables
  std::string note;              // why nothing was found, or what was decoded
};

// Walks back from `operands` (the values q is multiplied with on its way to
// the attention scores, or the cos/sin inputs of a rotary operator) to the
// frequencies. Stops at Linear MatMuls so it never wanders into weights.
RopeEvidence FindRopeFrequencies(const Graph& graph,
                                 const std::vector<std::string>& operands);

}  // namespace llmpack::onnx_import

#endif  // LLMPACK_ONNX_IMPORT_ROPE_GRAPH_H_
