#include "onnx_import/graph.h"

#include "absl/strings/str_cat.h"

namespace llmpack::onnx_import {

absl::StatusOr<Graph> Graph::Build(const OnnxModel& model) {
  Graph g(model);
  const onnx::GraphProto& proto = model.graph();
  for (const onnx::ValueInfoProto& in : proto.input())
    g.inputs_.insert(in.name());
  for (const onnx::ValueInfoProto& out : proto.output()) {
    g.outputs_.insert(out.name());
  }
  for (const onnx::NodeProto& node : proto.node()) {
    for (const std::string& out : node.output()) {
      if (out.empty()) continue;  // optional output left unnamed
      if (!g.producer_.emplace(out, &node).second) {
        return absl::InvalidArgumentError(
            absl::StrCat(model.path().string(), ": value '", out,
                         "' is produced by two nodes (", Describe(node), ")"));
      }
    }
  }
  for (const onnx::NodeProto& node : proto.node()) {
    for (int i = 0; i < node.input_size(); ++i) {
      const std::string& in = node.input(i);
      if (in.empty()) continue;  // optional input left out
      if (!g.producer_.contains(in) && !g.IsConstant(in) &&
          !g.inputs_.contains(in)) {
        return absl::InvalidArgumentError(absl::StrCat(
            model.path().string(), ": ", Describe(node), " reads '", in,
            "', which no node, initializer or graph input provides (the "
            "file is truncated or a node was removed)"));
      }
      g.consumers_[in].push_back(Use{&node, i});
    }
  }
  for (const std::string& out : g.outputs_) {
    if (!g.producer_.contains(out) && !g.IsConstant(out) &&
        !g.inputs_.contains(out)) {
      return absl::InvalidArgumentError(absl::StrCat(
          model.path().string(), ": graph output '", out,
          "' is not computed by any node (the file is truncated or a node "
          "was removed)"));
    }
  }
  return g;
}

const onnx::NodeProto* Graph::Producer(const std::string& value) const {
  auto it = producer_.find(value);
  return it == producer_.end() ? nullptr : it->second;
}

const std::vector<Use>& Graph::Consumers(const std::string& value) const {
  static const std::vector<Use> kNone;
  auto it = consumers_.find(value);
  return it == consumers_.end() ? kNone : it->second;
}

bool Graph::IsConstant(const std::string& value) const {
  return model_->FindConstant(value) != nullptr;
}

bool Graph::IsGraphInput(const std::string& value) const {
  return inputs_.contains(value) && !IsConstant(value);
}

bool Graph::IsGraphOutput(const std::string& value) const {
  return outputs_.contains(value);
}

namespace {
bool IsCopy(const onnx::NodeProto& node) {
  return node.domain().empty() &&
         (node.op_type() == "Identity" || node.op_type() == "Cast");
}
}  // namespace

std::string Graph::SkipCastsBackward(std::string value) const {
  // Bounded: a well-formed graph is acyclic, a malformed one must not hang.
  for (int step = 0; step < 16; ++step) {
    const onnx::NodeProto* p = Producer(value);
    if (p == nullptr || !IsCopy(*p) || p->input_size() < 1) break;
    value = p->input(0);
  }
  return value;
}

std::vector<Use> Graph::ConsumersThroughCasts(const std::string& value) const {
  std::vector<Use> found;
  std::vector<std::string> frontier = {value};
  for (int depth = 0; depth < 4 && !frontier.empty(); ++depth) {
    std::vector<std::string> next;
    for (const std::string& v : frontier) {
      for (const Use& use : Consumers(v)) {
        if (IsCopy(*use.node)) {
          next.push_back(use.node->output(0));
        } else {
          found.push_back(use);
        }
      }
    }
    frontier = std::move(next);
  }
  return found;
}

std::string Graph::Describe(const onnx::NodeProto& node) {
  return absl::StrCat("node '", node.name(), "' (", node.op_type(), ")");
}

int64_t IntAttr(const onnx::NodeProto& node, const std::string& name,
                int64_t fallback) {
  for (const onnx::AttributeProto& a : node.attribute()) {
    if (a.name() == name) return a.i();
  }
  return fallback;
}

float FloatAttr(const onnx::NodeProto& node, const std::string& name,
                float fallback) {
  for (const onnx::AttributeProto& a : node.attribute()) {
    if (a.name() == name) return a.f();
  }
  return fallback;
}

std::vector<int64_t> IntsAttr(const onnx::NodeProto& node,
                              const std::string& name) {
  for (const onnx::AttributeProto& a : node.attribute()) {
    if (a.name() == name) return {a.ints().begin(), a.ints().end()};
  }
  return {};
}

}  // namespace llmpack::onnx_import
