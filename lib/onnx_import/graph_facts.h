// Configuration facts a recovered graph determines (sizes, head_dim, RoPE
// frequencies) and the shape check of every recovered weight against them.
// Internal to graph_analysis; pure functions.
#ifndef LLMPACK_ONNX_IMPORT_GRAPH_FACTS_H_
#define LLMPACK_ONNX_IMPORT_GRAPH_FACTS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "onnx_import/graph_analysis.h"
#include "onnx_import/rope_graph.h"

namespace llmpack::onnx_import {

// What the layer walk saw besides the weights.
struct LayerEvidence {
  // Innermost size of the first Reshape on q's (k's) path, per layer; 0
  // when that Reshape's shape is not constant.
  std::vector<int64_t> reshape_q, reshape_k;
  RopeEvidence rope;
};

// Fills model.facts and checks every weight's Hugging Face shape against
// layer 0's sizes; errors (prefixed with `where`) name layer, role and
// constant.
absl::Status DeriveFactsAndCheckShapes(const std::string& where,
                                       const LayerEvidence& evidence,
                                       RecoveredModel& model);

}  // namespace llmpack::onnx_import

#endif  // LLMPACK_ONNX_IMPORT_GRAPH_FACTS_H_
