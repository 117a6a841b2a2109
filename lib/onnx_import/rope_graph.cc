#include "onnx_import/rope_graph.h"

#include <cstring>
#include <deque>
#include <functional>
#include <set>

#include "absl/strings/str_cat.h"
#include "llmpack/dtype.h"
#include "onnx_import/rope_inference.h"

namespace llmpack::onnx_import {
namespace {

constexpr size_t kMaxWalkValues = 256;
// No model has more rotary frequencies than this; bigger constants behind
// the angles are not the frequency vector.
constexpr int64_t kMaxFrequencies = 1 << 16;

// A MatMul against a weight matrix: its input 1 leads (through copies and
// transposes) to a 2-D constant with both sides > 1. The inverse-frequency
// product (positions x [1, n, 1] or [1, n]) is not one.
bool IsLinearMatMul(const Graph& g, const onnx::NodeProto& n) {
  if (n.op_type() == "Gemm" || n.op_type() == "MatMulNBits") return true;
  if (n.op_type() != "MatMul" || n.input_size() != 2) return false;
  std::string v = n.input(1);
  for (int step = 0; step < 6; ++step) {
    if (const onnx::TensorProto* t = g.model().FindConstant(v)) {
      return t->dims_size() == 2 && t->dims(0) > 1 && t->dims(1) > 1;
    }
    const onnx::NodeProto* p = g.Producer(v);
    if (p == nullptr || p->input_size() == 0 ||
        (p->op_type() != "Transpose" && p->op_type() != "Cast" &&
         p->op_type() != "Identity")) {
      return false;
    }
    v = p->input(0);
  }
  return false;
}

// Breadth-first walk over producers; `visit` returns true to stop at v.
void WalkBack(const Graph& g, const std::vector<std::string>& start,
              const std::function<bool(const std::string&)>& visit) {
  std::set<std::string> seen(start.begin(), start.end());
  std::deque<std::string> queue(start.begin(), start.end());
  while (!queue.empty() && seen.size() < kMaxWalkValues) {
    const std::string v = queue.front();
    queue.pop_front();
    if (visit(v)) continue;
    const onnx::NodeProto* p = g.Producer(v);
    if (p == nullptr || IsLinearMatMul(g, *p)) continue;
    for (const std::string& in : p->input()) {
      if (!in.empty() && seen.insert(in).second) queue.push_back(in);
    }
  }
}

// A 2-D float constant whose row 0 is all `first` (cos(0) = 1, sin(0) = 0).
// Row 0 is read from the raw bytes, so a large weight met on the way is not
// converted wholesale.
bool IsTable(const Graph& g, const std::string& v, double first) {
  const onnx::TensorProto* t = g.model().FindConstant(v);
  if (t == nullptr || t->dims_size() != 2 || t->dims(0) < 2) return false;
  auto data = g.model().Data(v);
  if (!data.ok()) return false;
  for (int64_t i = 0; i < t->dims(1); ++i) {
    const uint8_t* p = data->bytes.data();
    double value;
    if (data->onnx_type == onnx::TensorProto::FLOAT) {
      float f;
      std::memcpy(&f, p + 4 * i, 4);
      value = f;
    } else if (data->onnx_type == onnx::TensorProto::FLOAT16 ||
               data->onnx_type == onnx::TensorProto::BFLOAT16) {
      uint16_t h;
      std::memcpy(&h, p + 2 * i, 2);
      value = data->onnx_type == onnx::TensorProto::FLOAT16 ? F16ToF32(h)
                                                            : BF16ToF32(h);
    } else {
      return false;
    }
    if (value != first) return false;
  }
  return true;
}

}  // namespace

RopeEvidence FindRopeFrequencies(const Graph& g,
                                 const std::vector<std::string>& operands) {
  RopeEvidence found;
  std::vector<std::string> trig_inputs;
  std::string cos_table, sin_table;
  WalkBack(g, operands, [&](const std::string& v) {
    const onnx::NodeProto* p = g.Producer(v);
    if (p != nullptr && (p->op_type() == "Cos" || p->op_type() == "Sin")) {
      trig_inputs.push_back(p->input(0));
      return true;
    }
    if (cos_table.empty() && IsTable(g, v, 1.0)) cos_table = v;
    if (sin_table.empty() && IsTable(g, v, 0.0)) sin_table = v;
    return g.model().FindConstant(v) != nullptr;
  });
  // Angles are positions times the inverse frequencies, whose first entry
  // is theta^0 = 1.
  WalkBack(g, trig_inputs, [&](const std::string& v) {
    if (!found.inv_freq.empty()) return true;
    const onnx::TensorProto* t = g.model().FindConstant(v);
    if (t == nullptr) return false;
    int64_t elements = 1;
    for (int64_t d : t->dims()) elements *= d;
    if (elements > kMaxFrequencies) return true;
    auto values = g.model().FloatValues(v);
    if (values.ok() && values->size() >= 2 && (*values)[0] == 1.0) {
      found.inv_freq = *values;
    }
    return true;
  });
  if (!found.inv_freq.empty()) return found;
  if (!trig_inputs.empty()) {
    found.note = "found Cos/Sin nodes but no inverse-frequency constant";
    return found;
  }
  if (cos_table.empty() || sin_table.empty()) {
    found.note = "found neither Cos/Sin of positions nor cos/sin tables";
    return found;
  }
  auto cos = g.model().FloatValues(cos_table);
  auto sin = g.model().FloatValues(sin_table);
  const onnx::TensorProto* t = g.model().FindConstant(cos_table);
  const onnx::TensorProto* s = g.model().FindConstant(sin_table);
  if (!cos.ok() || !sin.ok() || t->dims(0) != s->dims(0) ||
      t->dims(1) != s->dims(1)) {
    found.note = absl::StrCat("cos/sin tables '", cos_table, "' and '",
                              sin_table, "' do not match in shape");
    return found;
  }
  absl::StatusOr<std::vector<double>> inv =
      InverseFrequenciesFromTables(*cos, *sin, t->dims(0), t->dims(1));
  if (!inv.ok()) {
    found.note = absl::StrCat("cos/sin tables '", cos_table, "', '", sin_table,
                              "': ", inv.status().message());
    return found;
  }
  found.inv_freq = *std::move(inv);
  found.table_rows = t->dims(0);
  return found;
}

}  // namespace llmpack::onnx_import
