#include "onnx_import/graph_analysis.h"

#include <algorithm>
#include <deque>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "llmpack/status_macros.h"
#include "onnx_import/graph_facts.h"
#include "onnx_import/nbits.h"
#include "onnx_import/rope_graph.h"

namespace llmpack::onnx_import {
namespace {

using onnx::NodeProto;

// Searches are bounded so a malformed or unexpected graph cannot make the
// analysis slow; real attention blocks need a few dozen steps.
constexpr int kMaxTraceValues = 256;
constexpr int kSoftmaxSearchNodes = 24;

bool Is(const NodeProto& n, const char* op) { return n.op_type() == op; }

// Ops whose inputs after the first are shapes, indices or axes: dataflow
// through them follows input 0 only.
bool DataIsInputZeroOnly(const NodeProto& n) {
  static const std::set<std::string> kOps = {
      "Reshape",    "Expand",    "Slice",          "Unsqueeze", "Squeeze",
      "Tile",       "Pad",       "Split",          "Gather",    "Transpose",
      "Cast",       "Identity",  "Dropout",        "Flatten",   "CumSum",
      "ReduceMean", "ReduceSum", "RotaryEmbedding"};
  return kOps.contains(n.op_type());
}

bool IsMetadataOp(const NodeProto& n) {
  return Is(n, "Shape") || Is(n, "Size") || Is(n, "ConstantOfShape");
}

// Fused attention operators and the input index of q, k and v.
bool IsFusedAttention(const NodeProto& n) {
  return Is(n, "Attention") || Is(n, "MultiHeadAttention") ||
         Is(n, "GroupQueryAttention");
}

bool IsQuantizedMatMul(const NodeProto& n) {
  return Is(n, "MatMulInteger") || Is(n, "QLinearMatMul") ||
         Is(n, "DynamicQuantizeMatMul") || Is(n, "MatMulIntegerToFloat") ||
         Is(n, "MatMulBnb4");
}

// Nodes that multiply by a weight or combine two activations: searches for
// the Softmax around attention must not run through them.
bool IsMatMulLike(const NodeProto& n) {
  return Is(n, "MatMul") || Is(n, "Gemm") || Is(n, "MatMulNBits") ||
         IsQuantizedMatMul(n);
}

enum class Role { kUnknown, kQuery, kKey, kValue };

const char* RoleName(Role r) {
  switch (r) {
    case Role::kQuery:
      return "query";
    case Role::kKey:
      return "key";
    case Role::kValue:
      return "value";
    default:
      return "unknown";
  }
}

struct Linear {
  const NodeProto* node = nullptr;
  WeightRef weight;
  WeightRef bias;
  std::string out;  // after the bias Add when there is one
  // Set for the parts of a packed q/k/v that a fused attention op splits
  // itself: the dataflow cannot tell them apart, the op's layout does.
  Role role = Role::kUnknown;
};

// Rows [begin, end) of a packed Linear's weight (and bias).
Linear Band(const Linear& lin, int64_t begin, int64_t end, std::string out) {
  Linear part = lin;
  for (WeightRef* w : {&part.weight, &part.bias}) {
    if (!w->present()) continue;
    w->packed_rows = w->shape[0];
    w->row_offset = begin;
    w->shape[0] = end - begin;
  }
  part.out = std::move(out);
  return part;
}

struct Norm {
  WeightRef weight;
  double eps = 0;
  std::string out;
};

// The residual stream after a block's Add. ONNX Runtime fuses that Add with
// the next RMSNorm (SkipSimplifiedLayerNormalization); then `norm` is set
// and `value` may be empty when nothing else reads the sum.
struct Residual {
  std::string value;
  std::optional<Norm> norm;
};

// Where a projection's output ends up inside the attention block.
struct ProjectionTrace {
  Role role = Role::kUnknown;
  const NodeProto* sink = nullptr;  // score/value MatMul or fused attention
  int64_t reshape_last_dim = 0;     // first Reshape's innermost size
  std::optional<Norm> norm;         // q_norm / k_norm on the way
  std::vector<std::string> rope_operands;  // Mul operands from outside
};

class Analyzer {
 public:
  explicit Analyzer(const Graph& g)
      : g_(g), m_(g.model()), where_(g.model().path().string()) {}

  absl::StatusOr<RecoveredModel> Run();

 private:
  absl::Status Error(const std::string& msg) const {
    return absl::InvalidArgumentError(absl::StrCat(where_, ": ", msg));
  }

  std::optional<WeightRef> ResolveMatrix(std::string value,
                                         bool stored_in_out) const;
  std::optional<WeightRef> ResolveVector(std::string value) const;
  absl::StatusOr<std::vector<Linear>> LinearConsumers(
      const std::string& value) const;
  std::vector<Linear> Unpack(const Linear& lin) const;
  std::optional<std::vector<Linear>> SplitForFusedAttention(
      const Linear& lin) const;
  std::optional<Norm> MatchNorm(const std::string& x) const;
  std::optional<Norm> MatchDecomposedNorm(const std::string& x,
                                          const NodeProto& square) const;
  bool FeedsSoftmax(const std::string& value) const;
  bool ComesFromSoftmax(std::string value) const;
  ProjectionTrace TraceProjection(const std::string& start) const;
  absl::StatusOr<Linear> NextLinear(const std::string& value,
                                    const std::string& what) const;
  std::optional<Residual> ResidualAdd(const std::string& residual,
                                      const std::string& branch) const;
  bool ReachesGraphOutput(const std::string& value) const;
  absl::StatusOr<Linear> FindEmbedding();
  absl::StatusOr<Residual> AnalyzeLayer(int layer, const std::string& x,
                                        std::vector<Linear> qkv,
                                        LayerWeights& w);

  const Graph& g_;
  const OnnxModel& m_;
  std::string where_;
  LayerEvidence evidence_;
  std::vector<std::string> rope_operands_;
};

std::optional<WeightRef> Analyzer::ResolveMatrix(std::string value,
                                                 bool stored_in_out) const {
  bool transpose = stored_in_out;
  for (int step = 0; step < 8; ++step) {
    if (const onnx::TensorProto* t = m_.FindConstant(value)) {
      if (t->dims_size() != 2) return std::nullopt;
      WeightRef ref{value, transpose, {t->dims(0), t->dims(1)}, std::nullopt};
      if (transpose) std::swap(ref.shape[0], ref.shape[1]);
      return ref;
    }
    const NodeProto* p = g_.Producer(value);
    if (p == nullptr || p->input_size() < 1) return std::nullopt;
    if (Is(*p, "Transpose")) {
      const std::vector<int64_t> perm = IntsAttr(*p, "perm");
      if (!perm.empty() && perm != std::vector<int64_t>{1, 0}) {
        return std::nullopt;
      }
      transpose = !transpose;
    } else if (!Is(*p, "Identity") && !Is(*p, "Cast")) {
      return std::nullopt;
    }
    value = p->input(0);
  }
  return std::nullopt;
}

std::optional<WeightRef> Analyzer::ResolveVector(std::string value) const {
  value = g_.SkipCastsBackward(value);
  const onnx::TensorProto* t = m_.FindConstant(value);
  if (t == nullptr) return std::nullopt;
  // A vector may be stored broadcast-ready, e.g. [1, 1, n].
  int64_t n = 1;
  int non_unit = 0;
  for (int64_t d : t->dims()) {
    n *= d;
    non_unit += d != 1;
  }
  if (non_unit > 1 || n < 2) return std::nullopt;
  return WeightRef{value, false, {n}, std::nullopt};
}

absl::StatusOr<std::vector<Linear>> Analyzer::LinearConsumers(
    const std::string& value) const {
  std::vector<Linear> found;
  for (const Use& use : g_.ConsumersThroughCasts(value)) {
    const NodeProto& n = *use.node;
    if (IsQuantizedMatMul(n)) {
      return absl::UnimplementedError(absl::StrCat(
          where_, ": ", Graph::Describe(n),
          " holds quantized weights; only float MatMul/Gemm weights and "
          "MatMulNBits are imported"));
    }
    std::optional<WeightRef> w;
    if (Is(n, "MatMulNBits") && use.input == 0) {
      ASSIGN_OR_RETURN(w, ResolveNBitsWeight(g_, n));
    } else if (Is(n, "MatMul") && use.input == 0 && n.input_size() == 2) {
      w = ResolveMatrix(n.input(1), /*stored_in_out=*/true);
    } else if (Is(n, "Gemm") && use.input == 0 &&
               IntAttr(n, "transA", 0) == 0) {
      w = ResolveMatrix(n.input(1), IntAttr(n, "transB", 0) == 0);
    }
    if (!w) continue;
    Linear lin{&n, *w, {}, n.output(0)};
    // Gemm's bias is input 2, MatMulNBits' input 5.
    const int bias_input = Is(n, "Gemm") ? 2 : Is(n, "MatMulNBits") ? 5 : -1;
    if (bias_input > 0 && n.input_size() > bias_input &&
        !n.input(bias_input).empty()) {
      if (auto b = ResolveVector(n.input(bias_input))) lin.bias = *b;
    }
    // A bias is an Add of a constant vector right after the MatMul.
    const std::vector<Use> after = g_.ConsumersThroughCasts(lin.out);
    if (!lin.bias.present() && after.size() == 1 && Is(*after[0].node, "Add")) {
      const NodeProto& add = *after[0].node;
      if (auto b = ResolveVector(add.input(1 - after[0].input));
          b && b->shape[0] == w->shape[0]) {
        lin.bias = *b;
        lin.out = add.output(0);
      }
    }
    for (Linear& part : Unpack(lin)) found.push_back(std::move(part));
  }
  return found;
}

// A Linear whose output is only split along its last axis (packed q/k/v or
// gate/up, by Split or by Slices) stands for one Linear per part, each a
// band of the weight's rows.
std::vector<Linear> Analyzer::Unpack(const Linear& lin) const {
  const std::vector<Use> uses = g_.ConsumersThroughCasts(lin.out);
  const int64_t width = lin.weight.shape[0];
  std::vector<std::pair<int64_t, int64_t>> ranges;  // [begin, end)
  std::vector<std::string> outs;
  // The packed axis must be the feature axis, never the batch axis 0.
  auto feature_axis = [](int64_t axis) { return axis == -1 || axis >= 1; };
  if (uses.size() == 1 && Is(*uses[0].node, "Split") && uses[0].input == 0) {
    const NodeProto& split = *uses[0].node;
    if (!feature_axis(IntAttr(split, "axis", 0))) return {lin};
    std::vector<int64_t> sizes = IntsAttr(split, "split");
    if (split.input_size() > 1 && !split.input(1).empty()) {
      sizes = m_.IntValues(split.input(1)).value_or(std::vector<int64_t>{});
    }
    const int64_t parts = split.output_size();
    if (sizes.empty() && parts > 0 && width % parts == 0) {
      sizes.assign(parts, width / parts);
    }
    if (static_cast<int64_t>(sizes.size()) != parts) return {lin};
    int64_t begin = 0;
    for (int64_t i = 0; i < parts; ++i) {
      ranges.push_back({begin, begin + sizes[i]});
      outs.push_back(split.output(i));
      begin += sizes[i];
    }
    if (begin != width) return {lin};
  } else if (uses.size() >= 2) {
    for (const Use& use : uses) {
      const NodeProto& n = *use.node;
      if (!Is(n, "Slice") || use.input != 0 || n.input_size() < 4) return {lin};
      auto starts = m_.IntValues(n.input(1));
      auto ends = m_.IntValues(n.input(2));
      auto axes = m_.IntValues(n.input(3));
      auto steps = n.input_size() > 4 ? m_.IntValues(n.input(4))
                                      : std::vector<int64_t>{1};
      if (!starts.ok() || !ends.ok() || !axes.ok() || !steps.ok() ||
          starts->size() != 1 || ends->size() != 1 || axes->size() != 1 ||
          !feature_axis((*axes)[0]) || *steps != std::vector<int64_t>{1}) {
        return {lin};
      }
      auto clamp = [&](int64_t v) {
        return std::clamp<int64_t>(v < 0 ? v + width : v, 0, width);
      };
      ranges.push_back({clamp((*starts)[0]), clamp((*ends)[0])});
      outs.push_back(n.output(0));
    }
  } else {
    return {lin};
  }
  std::vector<Linear> parts;
  for (size_t i = 0; i < ranges.size(); ++i) {
    const auto [begin, end] = ranges[i];
    if (end <= begin) return {lin};
    parts.push_back(Band(lin, begin, end, outs[i]));
  }
  return parts;
}

// GroupQueryAttention with empty key/value inputs takes q, k and v packed
// in its query input, [q heads | kv heads | kv heads] x head_dim.
std::optional<std::vector<Linear>> Analyzer::SplitForFusedAttention(
    const Linear& lin) const {
  const ProjectionTrace t = TraceProjection(lin.out);
  const NodeProto* gqa = t.sink;
  if (gqa == nullptr || !Is(*gqa, "GroupQueryAttention") ||
      t.role != Role::kQuery || gqa->input_size() < 3 ||
      !gqa->input(1).empty() || !gqa->input(2).empty()) {
    return std::nullopt;
  }
  const int64_t heads = IntAttr(*gqa, "num_heads", 0);
  const int64_t kv_heads = IntAttr(*gqa, "kv_num_heads", 0);
  const int64_t width = lin.weight.shape[0];
  if (heads <= 0 || kv_heads <= 0 || width % (heads + 2 * kv_heads) != 0) {
    return std::nullopt;
  }
  const int64_t hd = width / (heads + 2 * kv_heads);
  std::vector<Linear> parts = {
      Band(lin, 0, heads * hd, lin.out),
      Band(lin, heads * hd, (heads + kv_heads) * hd, lin.out),
      Band(lin, (heads + kv_heads) * hd, width, lin.out)};
  parts[0].role = Role::kQuery;
  parts[1].role = Role::kKey;
  parts[2].role = Role::kValue;
  return parts;
}

std::optional<Norm> Analyzer::MatchNorm(const std::string& x) const {
  for (const Use& use : g_.ConsumersThroughCasts(x)) {
    const NodeProto& n = *use.node;
    if ((Is(n, "SimplifiedLayerNormalization") || Is(n, "RMSNormalization")) &&
        use.input == 0 && n.input_size() >= 2) {
      std::optional<WeightRef> w = ResolveVector(n.input(1));
      if (!w) continue;
      return Norm{*w, FloatAttr(n, "epsilon", 1e-5f), n.output(0)};
    }
    const bool square =
        (Is(n, "Pow") && use.input == 0 && n.input_size() == 2 &&
         m_.FloatValues(n.input(1)).value_or(std::vector<double>{}) ==
             std::vector<double>{2.0}) ||
        (Is(n, "Mul") && n.input(0) == n.input(1));
    if (square) {
      if (auto norm = MatchDecomposedNorm(x, n)) return norm;
    }
  }
  return std::nullopt;
}

// x^2 -> ReduceMean -> Add(eps) -> Sqrt -> Reciprocal/Div -> Mul(x) ->
// Mul(weight), with Casts allowed between steps.
std::optional<Norm> Analyzer::MatchDecomposedNorm(
    const std::string& x, const NodeProto& square) const {
  const std::string source = g_.SkipCastsBackward(x);
  auto next = [&](const std::string& v, const char* op) -> const NodeProto* {
    for (const Use& use : g_.ConsumersThroughCasts(v)) {
      if (Is(*use.node, op)) return use.node;
    }
    return nullptr;
  };
  const NodeProto* mean = next(square.output(0), "ReduceMean");
  const NodeProto* add = mean ? next(mean->output(0), "Add") : nullptr;
  if (add == nullptr) return std::nullopt;
  const std::string& eps_value = g_.SkipCastsBackward(add->input(0)) ==
                                         g_.SkipCastsBackward(mean->output(0))
                                     ? add->input(1)
                                     : add->input(0);
  absl::StatusOr<std::vector<double>> eps = m_.FloatValues(eps_value);
  if (!eps.ok() || eps->size() != 1) return std::nullopt;
  const NodeProto* sqrt = next(add->output(0), "Sqrt");
  if (sqrt == nullptr) return std::nullopt;
  // x / sqrt, or x * r with r = Reciprocal(sqrt) or 1 / sqrt.
  std::string normalized;
  std::vector<std::string> reciprocals;
  for (const Use& use : g_.ConsumersThroughCasts(sqrt->output(0))) {
    const NodeProto& n = *use.node;
    if (Is(n, "Reciprocal")) reciprocals.push_back(n.output(0));
    if (!Is(n, "Div") || use.input != 1) continue;
    if (g_.SkipCastsBackward(n.input(0)) == source) {
      normalized = n.output(0);
    } else if (m_.FloatValues(n.input(0)).value_or(std::vector<double>{}) ==
               std::vector<double>{1.0}) {
      reciprocals.push_back(n.output(0));
    }
  }
  for (const std::string& r : reciprocals) {
    for (const Use& use : g_.ConsumersThroughCasts(r)) {
      const NodeProto& n = *use.node;
      if (Is(n, "Mul") &&
          g_.SkipCastsBackward(n.input(1 - use.input)) == source) {
        normalized = n.output(0);
      }
    }
  }
  if (normalized.empty()) return std::nullopt;
  for (const Use& use : g_.ConsumersThroughCasts(normalized)) {
    if (!Is(*use.node, "Mul")) continue;
    if (auto w = ResolveVector(use.node->input(1 - use.input))) {
      return Norm{*w, (*eps)[0], use.node->output(0)};
    }
  }
  return std::nullopt;
}

bool Analyzer::FeedsSoftmax(const std::string& value) const {
  std::deque<std::string> queue = {value};
  int visited = 0;
  while (!queue.empty() && visited < kSoftmaxSearchNodes) {
    const std::string v = queue.front();
    queue.pop_front();
    for (const Use& use : g_.Consumers(v)) {
      ++visited;
      const NodeProto& n = *use.node;
      if (Is(n, "Softmax")) return true;
      if (IsMatMulLike(n) || IsMetadataOp(n)) continue;
      for (const std::string& out : n.output()) queue.push_back(out);
    }
  }
  return false;
}

bool Analyzer::ComesFromSoftmax(std::string value) const {
  for (int step = 0; step < 8; ++step) {
    const NodeProto* p = g_.Producer(value);
    if (p == nullptr || p->input_size() == 0) return false;
    if (Is(*p, "Softmax")) return true;
    if (IsMatMulLike(*p)) return false;
    value = p->input(0);
  }
  return false;
}

ProjectionTrace Analyzer::TraceProjection(const std::string& start) const {
  ProjectionTrace trace;
  // The first attention MatMul reached decides the role; the rest of the
  // frontier is still explored (without passing that MatMul) so every RoPE
  // operand on the way is seen.
  auto set_sink = [&](const NodeProto& n, Role role) {
    if (trace.sink != nullptr) return;
    trace.sink = &n;
    trace.role = role;
  };
  std::set<std::string> seen = {start};
  std::deque<std::string> queue = {start};
  while (!queue.empty() && static_cast<int>(seen.size()) < kMaxTraceValues) {
    const std::string v = queue.front();
    queue.pop_front();
    if (!trace.norm && v != start) trace.norm = MatchNorm(v);
    for (const Use& use : g_.Consumers(v)) {
      const NodeProto& n = *use.node;
      if (IsMetadataOp(n)) continue;
      if (DataIsInputZeroOnly(n) && use.input != 0) continue;
      if (Is(n, "RotaryEmbedding") && use.input == 0) {
        // ONNX Runtime's rotary op: inputs 2 and 3 are the cos/sin caches.
        for (int i = 2; i < std::min(n.input_size(), 4); ++i) {
          trace.rope_operands.push_back(n.input(i));
        }
      }
      if (IsFusedAttention(n) && use.input <= 2) {
        // GroupQueryAttention may rotate q and k itself (cos/sin caches at
        // inputs 7 and 8).
        for (int i = 7; i < std::min(n.input_size(), 9); ++i) {
          if (!n.input(i).empty()) trace.rope_operands.push_back(n.input(i));
        }
        set_sink(n, use.input == 0   ? Role::kQuery
                    : use.input == 1 ? Role::kKey
                                     : Role::kValue);
        continue;
      }
      if (IsMatMulLike(n) && !Is(n, "MatMul")) continue;  // a Linear
      if (Is(n, "MatMul")) {
        if (ResolveMatrix(n.input(1), true)) continue;  // another Linear
        if (FeedsSoftmax(n.output(0))) {
          set_sink(n, use.input == 0 ? Role::kQuery : Role::kKey);
        } else if (use.input == 1 && ComesFromSoftmax(n.input(0))) {
          set_sink(n, Role::kValue);
        }
        continue;
      }
      if (Is(n, "Reshape") && trace.reshape_last_dim == 0) {
        auto shape = m_.IntValues(n.input(1));
        if (shape.ok() && !shape->empty() && shape->back() > 0) {
          trace.reshape_last_dim = shape->back();
        }
      }
      if (Is(n, "Mul") && n.input_size() == 2) {
        const std::string& other = n.input(1 - use.input);
        if (!seen.contains(other)) trace.rope_operands.push_back(other);
      }
      for (const std::string& out : n.output()) {
        if (!out.empty() && seen.insert(out).second) queue.push_back(out);
      }
    }
  }
  return trace;
}

// The next Linear downstream of `value` (e.g. o_proj after the value MatMul).
absl::StatusOr<Linear> Analyzer::NextLinear(const std::string& value,
                                            const std::string& what) const {
  std::set<std::string> seen = {value};
  std::deque<std::string> queue = {value};
  std::vector<Linear> found;
  while (!queue.empty() && static_cast<int>(seen.size()) < kMaxTraceValues) {
    const std::string v = queue.front();
    queue.pop_front();
    ASSIGN_OR_RETURN(std::vector<Linear> lins, LinearConsumers(v));
    if (!lins.empty()) {
      found = std::move(lins);
      break;
    }
    for (const Use& use : g_.Consumers(v)) {
      if (IsMetadataOp(*use.node)) continue;
      if (DataIsInputZeroOnly(*use.node) && use.input != 0) continue;
      for (const std::string& out : use.node->output()) {
        if (!out.empty() && seen.insert(out).second) queue.push_back(out);
      }
    }
  }
  if (found.size() != 1) {
    return Error(absl::StrCat(what, ": found ", found.size(),
                              " weight MatMuls downstream of '", value,
                              "', expected 1"));
  }
  return found[0];
}

std::optional<Residual> Analyzer::ResidualAdd(const std::string& residual,
                                              const std::string& branch) const {
  const std::string base = g_.SkipCastsBackward(residual);
  for (const Use& use : g_.ConsumersThroughCasts(branch)) {
    const NodeProto& n = *use.node;
    if (use.input > 1 || n.input_size() < 2 ||
        g_.SkipCastsBackward(n.input(1 - use.input)) != base) {
      continue;
    }
    if (Is(n, "Add")) return Residual{n.output(0), std::nullopt};
    // Inputs (input, skip, gamma[, bias]); outputs (normed, mean,
    // inv_std_var, input + skip).
    const bool has_bias = n.input_size() > 3 && !n.input(3).empty();
    if (Is(n, "SkipSimplifiedLayerNormalization") && !has_bias &&
        n.input_size() >= 3) {
      if (std::optional<WeightRef> w = ResolveVector(n.input(2))) {
        return Residual{n.output_size() > 3 ? n.output(3) : "",
                        Norm{*w, FloatAttr(n, "epsilon", 1e-5f), n.output(0)}};
      }
    }
  }
  return std::nullopt;
}

bool Analyzer::ReachesGraphOutput(const std::string& value) const {
  std::string v = value;
  for (int step = 0; step < 6; ++step) {
    if (g_.IsGraphOutput(v)) return true;
    const std::vector<Use>& uses = g_.Consumers(v);
    if (uses.size() != 1 || uses[0].input != 0) return false;
    v = uses[0].node->output(0);
  }
  return false;
}

absl::StatusOr<Linear> Analyzer::FindEmbedding() {
  std::vector<Linear> found;
  for (const NodeProto& n : m_.graph().node()) {
    if (!Is(n, "Gather") || n.input_size() != 2 || IntAttr(n, "axis", 0) != 0) {
      continue;
    }
    std::optional<WeightRef> table = ResolveMatrix(n.input(0), false);
    if (table && g_.IsGraphInput(g_.SkipCastsBackward(n.input(1)))) {
      found.push_back(Linear{&n, *table, {}, n.output(0)});
    }
  }
  if (found.size() != 1) {
    return Error(absl::StrCat(
        "found ", found.size(),
        " Gather nodes reading a 2-D constant table with graph-input indices, "
        "expected 1 (the token embedding)"));
  }
  return found[0];
}

absl::StatusOr<RecoveredModel> Analyzer::Run() {
  RecoveredModel model;
  ASSIGN_OR_RETURN(Linear embed, FindEmbedding());
  model.embedding = embed.weight;
  std::string x = embed.out;
  std::optional<Norm> fused_norm;  // computed with the previous residual Add
  for (int layer = 0;; ++layer) {
    // Each layer consumes several nodes; more layers than nodes means the
    // "graph" loops back on itself.
    if (layer > m_.graph().node_size()) {
      return Error("the residual stream loops back on itself (cyclic graph)");
    }
    std::optional<Norm> norm = fused_norm ? fused_norm : MatchNorm(x);
    if (!norm) {
      return Error(absl::StrCat(
          layer == 0 ? "the embedding output '"
                     : absl::StrCat("after layer ", layer - 1,
                                    ": the residual stream '"),
          x,
          "' does not feed an RMSNorm (expected Pow/ReduceMean/Add/Sqrt/"
          "Reciprocal/Mul with a weight, or SimplifiedLayerNormalization)"));
    }
    ASSIGN_OR_RETURN(std::vector<Linear> lins, LinearConsumers(norm->out));
    if (lins.size() == 1 && ReachesGraphOutput(lins[0].out)) {
      if (layer == 0) return Error("the graph has no transformer layers");
      if (lins[0].bias.present()) {
        return Error(
            "the output projection has a bias, which the package "
            "format does not hold");
      }
      model.final_norm = norm->weight;
      model.lm_head = lins[0].weight;
      break;
    }
    if (lins.size() == 1) {
      if (auto parts = SplitForFusedAttention(lins[0])) lins = *parts;
    }
    if (lins.size() != 3) {
      return Error(absl::StrCat(
          "layer ", layer, ": found ", lins.size(),
          " MatMuls reading the attention norm output '", norm->out,
          "', expected 3 (q, k and v projections)",
          lins.size() == 1 ? ", or 1 leading to the graph output (lm_head)"
                           : ""));
    }
    LayerWeights w;
    w.input_norm = norm->weight;
    if (layer == 0) model.facts.norm_eps = norm->eps;
    ASSIGN_OR_RETURN(Residual next, AnalyzeLayer(layer, x, std::move(lins), w));
    x = next.value;
    fused_norm = next.norm;
    model.layers.push_back(std::move(w));
  }
  model.facts.tied = model.lm_head.value == model.embedding.value &&
                     model.lm_head.transpose == model.embedding.transpose;
  evidence_.rope = FindRopeFrequencies(g_, rope_operands_);
  RETURN_IF_ERROR(DeriveFactsAndCheckShapes(where_, evidence_, model));
  return model;
}

absl::StatusOr<Residual> Analyzer::AnalyzeLayer(int layer, const std::string& x,
                                                std::vector<Linear> qkv,
                                                LayerWeights& w) {
  const std::string prefix = absl::StrCat("layer ", layer, ": ");
  const Linear* by_role[4] = {nullptr, nullptr, nullptr, nullptr};
  ProjectionTrace traces[4];
  std::vector<std::string> found;
  for (const Linear& lin : qkv) {
    ProjectionTrace t = TraceProjection(lin.out);
    if (lin.role != Role::kUnknown) t.role = lin.role;
    found.push_back(
        absl::StrCat("'", lin.weight.value, "' -> ", RoleName(t.role)));
    const int r = static_cast<int>(t.role);
    if (t.role != Role::kUnknown && by_role[r] == nullptr) {
      by_role[r] = &lin;
      traces[r] = std::move(t);
    }
  }
  for (Role r : {Role::kQuery, Role::kKey, Role::kValue}) {
    if (by_role[static_cast<int>(r)] == nullptr) {
      return Error(absl::StrCat(
          prefix, "cannot tell q, k and v apart from the attention dataflow (",
          absl::StrJoin(found, ", "),
          "); expected one query (left input of the score MatMul), one key "
          "(right input) and one value (MatMul after the Softmax)"));
    }
  }
  const Linear& q = *by_role[1];
  const Linear& k = *by_role[2];
  const Linear& v = *by_role[3];
  w.q = q.weight, w.k = k.weight, w.v = v.weight;
  w.q_bias = q.bias, w.k_bias = k.bias, w.v_bias = v.bias;
  if (traces[1].norm) w.q_norm = traces[1].norm->weight;
  if (traces[2].norm) w.k_norm = traces[2].norm->weight;
  evidence_.reshape_q.push_back(traces[1].reshape_last_dim);
  evidence_.reshape_k.push_back(traces[2].reshape_last_dim);
  for (const std::string& op : traces[1].rope_operands) {
    rope_operands_.push_back(op);
  }

  const ProjectionTrace& vt = traces[3];
  ASSIGN_OR_RETURN(Linear o, NextLinear(vt.sink->output(0),
                                        absl::StrCat(prefix, "o projection")));
  if (o.bias.present()) {
    return Error(prefix +
                 "the o projection has a bias, which the package "
                 "format does not hold");
  }
  w.o = o.weight;
  std::optional<Residual> r1 = ResidualAdd(x, o.out);
  if (!r1) {
    return Error(absl::StrCat(prefix, "the o projection output '", o.out,
                              "' is not added to the residual stream '", x,
                              "'"));
  }
  std::optional<Norm> post = r1->norm ? r1->norm : MatchNorm(r1->value);
  if (!post) {
    return Error(absl::StrCat(prefix, "the attention residual '", r1->value,
                              "' does not feed an RMSNorm"));
  }
  w.post_norm = post->weight;
  ASSIGN_OR_RETURN(std::vector<Linear> mlp, LinearConsumers(post->out));
  if (mlp.size() != 2) {
    return Error(absl::StrCat(prefix, "found ", mlp.size(),
                              " MatMuls reading the MLP norm output '",
                              post->out, "', expected 2 (gate and up)"));
  }
  auto is_gate = [&](const Linear& lin) {
    for (const Use& use : g_.ConsumersThroughCasts(lin.out)) {
      if (Is(*use.node, "Sigmoid") || Is(*use.node, "Silu") ||
          Is(*use.node, "Swish") || Is(*use.node, "QuickGelu")) {
        return true;
      }
    }
    return false;
  };
  const bool gate0 = is_gate(mlp[0]), gate1 = is_gate(mlp[1]);
  if (gate0 == gate1) {
    return Error(absl::StrCat(
        prefix, gate0 ? "both" : "neither",
        " of the MLP MatMuls feed a SiLU (Sigmoid*x); expected exactly one "
        "(the gate)"));
  }
  const Linear& gate = gate0 ? mlp[0] : mlp[1];
  const Linear& up = gate0 ? mlp[1] : mlp[0];
  ASSIGN_OR_RETURN(Linear down,
                   NextLinear(up.out, absl::StrCat(prefix, "down projection")));
  ASSIGN_OR_RETURN(
      Linear down_from_gate,
      NextLinear(gate.out, absl::StrCat(prefix, "down projection")));
  if (down.node != down_from_gate.node) {
    return Error(prefix +
                 "the gate and up branches do not meet in one down "
                 "projection");
  }
  if (gate.bias.present() || up.bias.present() || down.bias.present()) {
    return Error(prefix +
                 "the MLP has biases, which the package format does "
                 "not hold");
  }
  w.gate = gate.weight, w.up = up.weight, w.down = down.weight;
  std::optional<Residual> r2 = ResidualAdd(r1->value, down.out);
  if (!r2) {
    return Error(absl::StrCat(prefix, "the down projection output '", down.out,
                              "' is not added to the residual stream '",
                              r1->value, "'"));
  }
  return *r2;
}

}  // namespace

absl::StatusOr<RecoveredModel> RecoverModel(const Graph& graph) {
  Analyzer analyzer(graph);
  return analyzer.Run();
}

}  // namespace llmpack::onnx_import
