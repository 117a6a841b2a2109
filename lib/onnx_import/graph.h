// Dataflow index over an ONNX graph: which node produces each value and
// which nodes read it. Built once; immutable afterwards, so const methods are
// safe from several threads. Node pointers point into the OnnxModel, which
// must outlive the Graph.
#ifndef LLMPACK_ONNX_IMPORT_GRAPH_H_
#define LLMPACK_ONNX_IMPORT_GRAPH_H_

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "onnx_import/onnx_model.h"

namespace llmpack::onnx_import {

// One read of a value: `node` takes it as input number `input`.
struct Use {
  const onnx::NodeProto* node = nullptr;
  int input = 0;
};

class Graph {
 public:
  // Fails when a node reads a value that no node, constant or graph input
  // provides (a truncated or hand-edited file), naming node and value.
  static absl::StatusOr<Graph> Build(const OnnxModel& model);

  const OnnxModel& model() const { return *model_; }
  // The node computing `value`, or nullptr for constants and graph inputs.
  const onnx::NodeProto* Producer(const std::string& value) const;
  const std::vector<Use>& Consumers(const std::string& value) const;
  bool IsConstant(const std::string& value) const;
  bool IsGraphInput(const std::string& value) const;
  bool IsGraphOutput(const std::string& value) const;

  // Follows Identity and Cast nodes backward to the value they copy.
  std::string SkipCastsBackward(std::string value) const;
  // Consumers of `value`, looking through Identity and Cast nodes.
  std::vector<Use> ConsumersThroughCasts(const std::string& value) const;

  // "node 'name' (OpType)" for error messages.
  static std::string Describe(const onnx::NodeProto& node);

 private:
  explicit Graph(const OnnxModel& model) : model_(&model) {}
  const OnnxModel* model_;
  std::map<std::string, const onnx::NodeProto*> producer_;
  std::map<std::string, std::vector<Use>> consumers_;
  std::set<std::string> inputs_;
  std::set<std::string> outputs_;
};

// Attribute helpers; `fallback` when the attribute is absent.
int64_t IntAttr(const onnx::NodeProto& node, const std::string& name,
                int64_t fallback);
float FloatAttr(const onnx::NodeProto& node, const std::string& name,
                float fallback);
std::vector<int64_t> IntsAttr(const onnx::NodeProto& node,
                              const std::string& name);

}  // namespace llmpack::onnx_import

#endif  // LLMPACK_ONNX_IMPORT_GRAPH_H_
