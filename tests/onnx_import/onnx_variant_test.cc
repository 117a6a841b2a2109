// Exporter styles the fixtures do not cover, built by rewriting a fixture
// graph into an equivalent one: anonymous names in shuffled node order,
// weights stored [out, in] behind explicit Transpose nodes, fused RMSNorm
// operators, f16 weights behind Casts, and q/k/v biases. Role recovery must
// not depend on any of it.
#include <climits>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <set>

#include "convert/hf_convert.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "llmpack/dtype.h"
#include "llmpack/tensor_file.h"
#include "onnx_import/onnx_convert.h"
#include "onnx_import/onnx_test_util.h"
#include "support/test_paths.h"

namespace llmpack::onnx_import {
namespace {
namespace fs = std::filesystem;
using ::llmpack::testing::OnnxFixture;
using ::llmpack::testing::ScopedTempDir;

enum FixtureIndex { kLlamaDynamo = 0, kQwen3 = 2 };

onnx::TensorProto* Initializer(onnx::ModelProto& m, const std::string& name) {
  for (onnx::TensorProto& t : *m.mutable_graph()->mutable_initializer()) {
    if (t.name() == name) return &t;
  }
  return nullptr;
}

std::vector<float> Floats(const onnx::TensorProto& t) {
  std::vector<float> v(t.raw_data().size() / 4);
  std::memcpy(v.data(), t.raw_data().data(), t.raw_data().size());
  return v;
}

void SetFloats(onnx::TensorProto& t, const std::vector<float>& v) {
  t.set_raw_data(std::string(reinterpret_cast<const char*>(v.data()),
                             v.size() * sizeof(float)));
}

// Inserts `node` before the node at `index` (keeps a valid topological order).
void InsertNode(onnx::ModelProto& m, int index, onnx::NodeProto node) {
  auto* nodes = m.mutable_graph()->mutable_node();
  nodes->Add(std::move(node));
  for (int i = nodes->size() - 1; i > index; --i) nodes->SwapElements(i, i - 1);
}

// Every Linear weight (a 2-D initializer read as MatMul input 1).
std::vector<std::pair<int, std::string>> MatMulWeights(onnx::ModelProto& m) {
  std::vector<std::pair<int, std::string>> found;
  for (int i = 0; i < m.graph().node_size(); ++i) {
    const onnx::NodeProto& n = m.graph().node(i);
    if (n.op_type() != "MatMul") continue;
    const onnx::TensorProto* t = Initializer(m, n.input(1));
    if (t != nullptr && t->dims_size() == 2) found.push_back({i, n.input(1)});
  }
  return found;
}

class OnnxVariantTest : public ::testing::Test {
 protected:
  // Stages fixture `index` without config.json, rewrites its graph, and
  // converts it (keeping the source dtype unless `dtype` is set).
  absl::StatusOr<Manifest> ConvertRewritten(
      FixtureIndex index, const std::function<void(onnx::ModelProto&)>& edit,
      std::optional<DType> dtype) {
    fx_ = ::llmpack::testing::OnnxFixtures()[index];
    const fs::path model =
        ::llmpack::testing::StageFixture(fx_, tmp_.path() / "in", false);
    onnx::ModelProto proto = ::llmpack::testing::ReadModelProto(model);
    edit(proto);
    ::llmpack::testing::WriteModelProto(proto, model);
    WritePackageOptions options;
    options.output_dir = tmp_.path() / "onnx_pkg";
    options.output_dtype = dtype;
    return ConvertOnnx(model, options);
  }

  // The Hugging Face package of the same fixture, in its own dtype.
  fs::path HfPackage() {
    WritePackageOptions options;
    options.output_dir = tmp_.path() / "hf_pkg";
    absl::StatusOr<Manifest> m = ConvertHuggingFace(fx_.hf_dir, options);
    EXPECT_TRUE(m.ok()) << m.status();
    return options.output_dir;
  }

  ScopedTempDir tmp_;
  OnnxFixture fx_;
};

TEST_F(OnnxVariantTest, AnonymousNamesAndShuffledNodes) {
  LLMPACK_REQUIRE_FIXTURES();
  absl::StatusOr<Manifest> got = ConvertRewritten(
      kQwen3,
      [](onnx::ModelProto& m) {
        std::map<std::string, std::string> renamed;
        int next = 0;
        for (onnx::TensorProto& t : *m.mutable_graph()->mutable_initializer()) {
          renamed[t.name()] = "c" + std::to_string(next++);
          t.set_name(renamed[t.name()]);
        }
        auto* vi = m.mutable_graph()->mutable_value_info();
        vi->Clear();  // carried the original weight names
        auto* nodes = m.mutable_graph()->mutable_node();
        for (onnx::NodeProto& n : *nodes) {
          n.set_name("n" + std::to_string(next++));
          for (std::string& in : *n.mutable_input()) {
            if (auto it = renamed.find(in); it != renamed.end())
              in = it->second;
          }
        }
        // Reverse the node list: analysis must follow dataflow, not order.
        for (int i = 0, j = nodes->size() - 1; i < j; ++i, --j) {
          nodes->SwapElements(i, j);
        }
      },
      DType::kF16);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(got->config.tie_word_embeddings);
  EXPECT_TRUE(got->config.qk_norm);
  ::llmpack::testing::ExpectSamePackageTensors(tmp_.path() / "onnx_pkg",
                                               HfPackage(), false);
}

TEST_F(OnnxVariantTest, WeightsBehindExplicitTransposes) {
  LLMPACK_REQUIRE_FIXTURES();
  absl::StatusOr<Manifest> got = ConvertRewritten(
      kLlamaDynamo,
      [](onnx::ModelProto& m) {
        // Store each [in, out] weight as [out, in] and transpose in-graph,
        // as TorchScript-era exports of nn.Linear do.
        auto weights = MatMulWeights(m);
        for (auto it = weights.rbegin(); it != weights.rend(); ++it) {
          onnx::TensorProto* t = Initializer(m, it->second);
          const int64_t rows = t->dims(0), cols = t->dims(1);
          const std::vector<float> in = Floats(*t);
          std::vector<float> out(in.size());
          for (int64_t r = 0; r < rows; ++r) {
            for (int64_t c = 0; c < cols; ++c)
              out[c * rows + r] = in[r * cols + c];
          }
          SetFloats(*t, out);
          t->set_dims(0, cols);
          t->set_dims(1, rows);
          onnx::NodeProto transpose;
          transpose.set_op_type("Transpose");
          transpose.set_name("T_" + it->second);
          transpose.add_input(it->second);
          transpose.add_output(it->second + "_T");
          auto* perm = transpose.add_attribute();
          perm->set_name("perm");
          perm->set_type(onnx::AttributeProto::INTS);
          perm->add_ints(1);
          perm->add_ints(0);
          m.mutable_graph()->mutable_node(it->first)->set_input(
              1, it->second + "_T");
          InsertNode(m, it->first, std::move(transpose));
        }
        EXPECT_FALSE(weights.empty());
        EXPECT_TRUE(MatMulWeights(m).empty()) << "a weight was left as is";
      },
      DType::kBF16);
  ASSERT_TRUE(got.ok()) << got.status();
  ::llmpack::testing::ExpectSamePackageTensors(tmp_.path() / "onnx_pkg",
                                               HfPackage(), false);
}

// Replaces every decomposed RMSNorm (Pow .. Mul(weight)) by one
// SimplifiedLayerNormalization node, as ONNX Runtime's optimizer does.
void FuseRmsNorms(onnx::ModelProto& m) {
  std::map<std::string, std::vector<int>> consumers;
  for (int i = 0; i < m.graph().node_size(); ++i) {
    for (const std::string& in : m.graph().node(i).input()) {
      consumers[in].push_back(i);
    }
  }
  auto only = [&](const std::string& v) {
    EXPECT_EQ(consumers[v].size(), 1u) << v;
    return consumers[v].empty() ? 0 : consumers[v][0];
  };
  std::set<int> removed;
  std::map<int, onnx::NodeProto> fused;  // by the index of the weight Mul
  for (int i = 0; i < m.graph().node_size(); ++i) {
    const onnx::NodeProto& pow = m.graph().node(i);
    if (pow.op_type() != "Pow") continue;
    const int mean = only(pow.output(0));
    const int add = only(m.graph().node(mean).output(0));
    const int sqrt = only(m.graph().node(add).output(0));
    const int recip = only(m.graph().node(sqrt).output(0));
    const int mul = only(m.graph().node(recip).output(0));
    const int wmul = only(m.graph().node(mul).output(0));
    const onnx::NodeProto& a = m.graph().node(add);
    const float eps = Floats(*Initializer(m, a.input(1)))[0];
    const onnx::NodeProto& w = m.graph().node(wmul);
    const std::string weight =
        w.input(0) == m.graph().node(mul).output(0) ? w.input(1) : w.input(0);
    onnx::NodeProto node;
    node.set_op_type("SimplifiedLayerNormalization");
    node.set_domain("com.microsoft");
    node.add_input(pow.input(0));
    node.add_input(weight);
    node.add_output(w.output(0));
    auto* attr = node.add_attribute();
    attr->set_name("epsilon");
    attr->set_type(onnx::AttributeProto::FLOAT);
    attr->set_f(eps);
    removed.insert({i, mean, add, sqrt, recip, mul, wmul});
    fused[wmul] = std::move(node);
  }
  ASSERT_FALSE(fused.empty());
  onnx::GraphProto* g = m.mutable_graph();
  google::protobuf::RepeatedPtrField<onnx::NodeProto> kept;
  for (int i = 0; i < g->node_size(); ++i) {
    if (fused.contains(i)) *kept.Add() = fused[i];
    if (!removed.contains(i)) *kept.Add() = g->node(i);
  }
  g->mutable_node()->Swap(&kept);
  for (const onnx::NodeProto& n : g->node()) {
    EXPECT_NE(n.op_type(), "Pow") << "a norm was left decomposed";
  }
}

TEST_F(OnnxVariantTest, FusedRmsNormOperators) {
  LLMPACK_REQUIRE_FIXTURES();
  absl::StatusOr<Manifest> got =
      ConvertRewritten(kQwen3, FuseRmsNorms, DType::kF16);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(got->config.qk_norm);
  EXPECT_EQ(got->config.norm_eps, 1e-6);
  ::llmpack::testing::ExpectSamePackageTensors(tmp_.path() / "onnx_pkg",
                                               HfPackage(), false);
}

// Turns each decomposed-then-fused norm that follows a residual Add into one
// SkipSimplifiedLayerNormalization (Add inside, sum as output 3), as ONNX
// Runtime's transformer optimizer does.
void FuseResidualAdds(onnx::ModelProto& m) {
  FuseRmsNorms(m);
  std::map<std::string, int> producer;
  for (int i = 0; i < m.graph().node_size(); ++i) {
    for (const std::string& out : m.graph().node(i).output()) producer[out] = i;
  }
  std::map<int, onnx::NodeProto> fused;  // by the index of the Add
  std::set<int> removed;
  for (int i = 0; i < m.graph().node_size(); ++i) {
    const onnx::NodeProto& norm = m.graph().node(i);
    if (norm.op_type() != "SimplifiedLayerNormalization") continue;
    auto it = producer.find(norm.input(0));
    if (it == producer.end() || m.graph().node(it->second).op_type() != "Add") {
      continue;
    }
    const onnx::NodeProto& add = m.graph().node(it->second);
    onnx::NodeProto skip = norm;
    skip.set_op_type("SkipSimplifiedLayerNormalization");
    skip.clear_input();
    skip.add_input(add.input(1));
    skip.add_input(add.input(0));
    skip.add_input(norm.input(1));
    skip.clear_output();
    skip.add_output(norm.output(0));
    skip.add_output("");
    skip.add_output("");
    skip.add_output(add.output(0));
    fused[it->second] = std::move(skip);
    removed.insert(i);
  }
  ASSERT_EQ(fused.size(), 6u);  // 3 layers x (post-attention, next/final)
  google::protobuf::RepeatedPtrField<onnx::NodeProto> kept;
  for (int i = 0; i < m.graph().node_size(); ++i) {
    if (fused.contains(i)) {
      *kept.Add() = fused[i];
    } else if (!removed.contains(i)) {
      *kept.Add() = m.graph().node(i);
    }
  }
  m.mutable_graph()->mutable_node()->Swap(&kept);
}

TEST_F(OnnxVariantTest, ResidualAddsFusedIntoSkipNorms) {
  LLMPACK_REQUIRE_FIXTURES();
  absl::StatusOr<Manifest> got =
      ConvertRewritten(kQwen3, FuseResidualAdds, DType::kF16);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->config.num_layers, 3);
  ::llmpack::testing::ExpectSamePackageTensors(tmp_.path() / "onnx_pkg",
                                               HfPackage(), false);
}

TEST_F(OnnxVariantTest, CosSinTablesInsteadOfCos) {
  LLMPACK_REQUIRE_FIXTURES();
  constexpr int64_t kRows = 2048;
  absl::StatusOr<Manifest> got = ConvertRewritten(
      kLlamaDynamo,
      [](onnx::ModelProto& m) {
        // Precompute cos/sin of positions x the graph's own f32 inverse
        // frequencies (halves repeated, as Hugging Face's cos_cached) and
        // read rows by position instead of computing Cos/Sin.
        const onnx::TensorProto* inv_t = nullptr;
        for (const onnx::TensorProto& t : m.graph().initializer()) {
          if (t.data_type() == onnx::TensorProto::FLOAT && t.dims_size() == 3 &&
              Floats(t)[0] == 1.0f) {
            inv_t = &t;
          }
        }
        ASSERT_NE(inv_t, nullptr);
        const std::vector<float> inv = Floats(*inv_t);
        const size_t n = inv.size();
        std::vector<float> cos_v, sin_v;
        for (int64_t p = 0; p < kRows; ++p) {
          for (size_t c = 0; c < 2 * n; ++c) {
            const float angle = static_cast<float>(p) * inv[c % n];
            cos_v.push_back(std::cos(angle));
            sin_v.push_back(std::sin(angle));
          }
        }
        for (const auto& [name, values] :
             {std::pair{"cos_table", &cos_v}, std::pair{"sin_table", &sin_v}}) {
          onnx::TensorProto* t = m.mutable_graph()->add_initializer();
          t->set_name(name);
          t->set_data_type(onnx::TensorProto::FLOAT);
          t->add_dims(kRows);
          t->add_dims(static_cast<int64_t>(2 * n));
          SetFloats(*t, *values);
        }
        onnx::TensorProto* axes = m.mutable_graph()->add_initializer();
        axes->set_name("axis0");
        axes->set_data_type(onnx::TensorProto::INT64);
        axes->add_dims(1);
        axes->add_int64_data(0);
        int replaced = 0;
        for (int i = m.graph().node_size() - 1; i >= 0; --i) {
          onnx::NodeProto* node = m.mutable_graph()->mutable_node(i);
          const bool is_cos = node->op_type() == "Cos";
          if (!is_cos && node->op_type() != "Sin") continue;
          // positions: the Range output the fixture's mask code also uses
          const std::string out = node->output(0);
          node->set_op_type("Gather");
          node->clear_input();
          node->add_input(is_cos ? "cos_table" : "sin_table");
          node->add_input("arange");
          node->set_output(0, out + "_rows");
          onnx::NodeProto unsqueeze;
          unsqueeze.set_op_type("Unsqueeze");
          unsqueeze.add_input(out + "_rows");
          unsqueeze.add_input("axis0");
          unsqueeze.add_output(out);
          InsertNode(m, i + 1, std::move(unsqueeze));
          ++replaced;
        }
        ASSERT_EQ(replaced, 2);
      },
      DType::kBF16);
  ASSERT_TRUE(got.ok()) << got.status();
  const Manifest hf = *ReadManifest(HfPackage());
  EXPECT_EQ(got->config.rope.type, hf.config.rope.type);
  EXPECT_EQ(got->config.rope.theta, hf.config.rope.theta);
  EXPECT_EQ(got->config.rope.factor, hf.config.rope.factor);
  EXPECT_EQ(got->config.rope.original_max_positions,
            hf.config.rope.original_max_positions);
  EXPECT_EQ(got->config.max_positions, kRows);
  EXPECT_THAT(got->config.inferred_fields,
              ::testing::Contains("max_positions"));
  ::llmpack::testing::ExpectSamePackageTensors(tmp_.path() / "onnx_pkg",
                                               tmp_.path() / "hf_pkg", false);
}

onnx::TensorProto* AddInt64s(onnx::ModelProto& m, const std::string& name,
                             const std::vector<int64_t>& values) {
  onnx::TensorProto* t = m.mutable_graph()->add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::INT64);
  t->add_dims(static_cast<int64_t>(values.size()));
  for (int64_t v : values) t->add_int64_data(v);
  return t;
}

// Replaces each group of MatMuls reading one value (q/k/v, gate/up) by one
// MatMul over the concatenated weights followed by a Split (3 parts) or by
// Slices (2 parts), as exporters that fuse projections emit.
void PackProjections(onnx::ModelProto& m) {
  std::map<std::string, std::vector<int>> readers;
  for (int i = 0; i < m.graph().node_size(); ++i) {
    const onnx::NodeProto& n = m.graph().node(i);
    if (n.op_type() == "MatMul" && Initializer(m, n.input(1)) != nullptr) {
      readers[n.input(0)].push_back(i);
    }
  }
  std::map<int, std::vector<onnx::NodeProto>> replacement;  // at first index
  std::set<int> removed;
  int group = 0;
  for (const auto& [input, nodes] : readers) {
    if (nodes.size() < 2) continue;
    const std::string name = "packed" + std::to_string(group++);
    std::vector<std::vector<float>> parts;
    std::vector<int64_t> widths;
    int64_t in = 0, total = 0;
    for (int i : nodes) {
      const onnx::TensorProto* w = Initializer(m, m.graph().node(i).input(1));
      in = w->dims(0);
      widths.push_back(w->dims(1));
      total += w->dims(1);
      parts.push_back(Floats(*w));
    }
    std::vector<float> packed;  // stored [in, total]
    for (int64_t r = 0; r < in; ++r) {
      for (size_t p = 0; p < parts.size(); ++p) {
        packed.insert(packed.end(), parts[p].begin() + r * widths[p],
                      parts[p].begin() + (r + 1) * widths[p]);
      }
    }
    onnx::TensorProto* t = m.mutable_graph()->add_initializer();
    t->set_name(name + "_w");
    t->set_data_type(onnx::TensorProto::FLOAT);
    t->add_dims(in);
    t->add_dims(total);
    SetFloats(*t, packed);
    std::vector<onnx::NodeProto> added(1);
    added[0].set_op_type("MatMul");
    added[0].add_input(input);
    added[0].add_input(name + "_w");
    added[0].add_output(name);
    if (nodes.size() == 3) {
      AddInt64s(m, name + "_sizes", widths);
      onnx::NodeProto split;
      split.set_op_type("Split");
      split.add_input(name);
      split.add_input(name + "_sizes");
      for (int i : nodes) split.add_output(m.graph().node(i).output(0));
      auto* axis = split.add_attribute();
      axis->set_name("axis");
      axis->set_type(onnx::AttributeProto::INT);
      axis->set_i(-1);
      added.push_back(std::move(split));
    } else {
      int64_t begin = 0;
      for (size_t p = 0; p < nodes.size(); ++p) {
        const std::string tag = name + "_" + std::to_string(p);
        AddInt64s(m, tag + "_starts", {begin});
        // The last part runs to "the end", as exporters write it.
        AddInt64s(m, tag + "_ends",
                  {p + 1 == nodes.size() ? INT64_MAX : begin + widths[p]});
        AddInt64s(m, tag + "_axes", {-1});
        onnx::NodeProto slice;
        slice.set_op_type("Slice");
        for (const char* suffix : {"", "_starts", "_ends", "_axes"}) {
          slice.add_input(*suffix ? tag + suffix : name);
        }
        slice.add_output(m.graph().node(nodes[p]).output(0));
        added.push_back(std::move(slice));
        begin += widths[p];
      }
    }
    replacement[nodes[0]] = std::move(added);
    removed.insert(nodes.begin(), nodes.end());
  }
  ASSERT_EQ(group, 6);  // 3 layers x (q/k/v, gate/up)
  google::protobuf::RepeatedPtrField<onnx::NodeProto> kept;
  for (int i = 0; i < m.graph().node_size(); ++i) {
    if (auto it = replacement.find(i); it != replacement.end()) {
      for (const onnx::NodeProto& n : it->second) *kept.Add() = n;
    }
    if (!removed.contains(i)) *kept.Add() = m.graph().node(i);
  }
  m.mutable_graph()->mutable_node()->Swap(&kept);
}

TEST_F(OnnxVariantTest, PackedProjectionsAreSplitBackIntoRoles) {
  LLMPACK_REQUIRE_FIXTURES();
  absl::StatusOr<Manifest> got =
      ConvertRewritten(kLlamaDynamo, PackProjections, DType::kBF16);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->config.num_kv_heads, 2);
  ::llmpack::testing::ExpectSamePackageTensors(tmp_.path() / "onnx_pkg",
                                               HfPackage(), false);
}

// Keeps only nodes the graph outputs depend on (in their original order).
void RemoveDeadNodes(onnx::ModelProto& m) {
  std::map<std::string, int> producer;
  for (int i = 0; i < m.graph().node_size(); ++i) {
    for (const std::string& out : m.graph().node(i).output()) producer[out] = i;
  }
  std::set<int> live;
  std::vector<std::string> stack;
  for (const auto& out : m.graph().output()) stack.push_back(out.name());
  while (!stack.empty()) {
    const std::string v = stack.back();
    stack.pop_back();
    auto it = producer.find(v);
    if (it == producer.end() || !live.insert(it->second).second) continue;
    for (const std::string& in : m.graph().node(it->second).input()) {
      if (!in.empty()) stack.push_back(in);
    }
  }
  google::protobuf::RepeatedPtrField<onnx::NodeProto> kept;
  for (int i = 0; i < m.graph().node_size(); ++i) {
    if (live.contains(i)) *kept.Add() = m.graph().node(i);
  }
  m.mutable_graph()->mutable_node()->Swap(&kept);
}

// ONNX Runtime GenAI's layout: one MatMul computes q, k and v packed, and
// GroupQueryAttention (rotary inside, from cos/sin caches) splits them.
void UseGroupQueryAttention(onnx::ModelProto& m) {
  // The fixture's dynamo export emits each layer's Linears in the order
  // q, k, v, o, gate, up, down, and the inverse frequencies as [1, n, 1].
  std::vector<int> linears;
  std::vector<float> inv;
  for (int i = 0; i < m.graph().node_size(); ++i) {
    const onnx::NodeProto& n = m.graph().node(i);
    if (n.op_type() == "MatMul" && Initializer(m, n.input(1)) != nullptr) {
      linears.push_back(i);
    }
  }
  for (const onnx::TensorProto& t : m.graph().initializer()) {
    if (t.dims_size() == 3 && t.data_type() == onnx::TensorProto::FLOAT &&
        Floats(t)[0] == 1.0f) {
      inv = Floats(t);
    }
  }
  ASSERT_EQ(linears.size(), 22u);
  ASSERT_EQ(inv.size(), 8u);
  constexpr int64_t kRows = 2048;
  std::vector<float> cos_v, sin_v;  // [rows, n], not repeated
  for (int64_t p = 0; p < kRows; ++p) {
    for (float f : inv) {
      cos_v.push_back(std::cos(static_cast<float>(p) * f));
      sin_v.push_back(std::sin(static_cast<float>(p) * f));
    }
  }
  for (const auto& [name, values] :
       {std::pair{"cos_cache", &cos_v}, std::pair{"sin_cache", &sin_v}}) {
    onnx::TensorProto* t = m.mutable_graph()->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    t->add_dims(kRows);
    t->add_dims(static_cast<int64_t>(inv.size()));
    SetFloats(*t, *values);
  }
  for (const char* name : {"seqlens_k", "total_sequence_length"}) {
    m.mutable_graph()->add_input()->set_name(name);
  }
  std::map<int, std::vector<onnx::NodeProto>> before;  // by o_proj index
  std::set<int> removed;
  for (int layer = 0; layer < 3; ++layer) {
    const int* l = &linears[7 * layer];
    const std::string tag = "layer" + std::to_string(layer);
    std::vector<std::vector<float>> parts;
    std::vector<int64_t> widths;
    int64_t in = 0, total = 0;
    for (int j = 0; j < 3; ++j) {
      const onnx::TensorProto* w =
          Initializer(m, m.graph().node(l[j]).input(1));
      in = w->dims(0);
      widths.push_back(w->dims(1));
      total += w->dims(1);
      parts.push_back(Floats(*w));
      removed.insert(l[j]);
    }
    std::vector<float> packed;  // stored [in, q | k | v]
    for (int64_t r = 0; r < in; ++r) {
      for (int j = 0; j < 3; ++j) {
        packed.insert(packed.end(), parts[j].begin() + r * widths[j],
                      parts[j].begin() + (r + 1) * widths[j]);
      }
    }
    onnx::TensorProto* t = m.mutable_graph()->add_initializer();
    t->set_name(tag + "_qkv");
    t->set_data_type(onnx::TensorProto::FLOAT);
    t->add_dims(in);
    t->add_dims(total);
    SetFloats(*t, packed);
    std::vector<onnx::NodeProto> nodes(2);
    nodes[0].set_op_type("MatMul");
    nodes[0].add_input(m.graph().node(l[0]).input(0));
    nodes[0].add_input(tag + "_qkv");
    nodes[0].add_output(tag + "_packed");
    nodes[1].set_op_type("GroupQueryAttention");
    nodes[1].set_domain("com.microsoft");
    for (const std::string& input :
         {tag + "_packed", std::string(), std::string(), std::string(),
          std::string(), std::string("seqlens_k"),
          std::string("total_sequence_length"), std::string("cos_cache"),
          std::string("sin_cache")}) {
      nodes[1].add_input(input);
    }
    nodes[1].add_output(tag + "_attn");
    for (const auto& [name, value] :
         {std::pair{"num_heads", 4}, std::pair{"kv_num_heads", 2},
          std::pair{"do_rotary", 1}}) {
      auto* a = nodes[1].add_attribute();
      a->set_name(name);
      a->set_type(onnx::AttributeProto::INT);
      a->set_i(value);
    }
    m.mutable_graph()->mutable_node(l[3])->set_input(0, tag + "_attn");
    before[l[3]] = std::move(nodes);
  }
  google::protobuf::RepeatedPtrField<onnx::NodeProto> kept;
  for (int i = 0; i < m.graph().node_size(); ++i) {
    if (auto it = before.find(i); it != before.end()) {
      for (const onnx::NodeProto& n : it->second) *kept.Add() = n;
    }
    if (!removed.contains(i)) *kept.Add() = m.graph().node(i);
  }
  m.mutable_graph()->mutable_node()->Swap(&kept);
  RemoveDeadNodes(m);
  for (const onnx::NodeProto& n : m.graph().node()) {
    EXPECT_NE(n.op_type(), "Softmax") << "old attention left in the graph";
  }
}

TEST_F(OnnxVariantTest, PackedQkvIntoGroupQueryAttention) {
  LLMPACK_REQUIRE_FIXTURES();
  absl::StatusOr<Manifest> got =
      ConvertRewritten(kLlamaDynamo, UseGroupQueryAttention, DType::kBF16);
  ASSERT_TRUE(got.ok()) << got.status();
  const Manifest hf = *ReadManifest(HfPackage());
  EXPECT_EQ(got->config.num_heads, hf.config.num_heads);
  EXPECT_EQ(got->config.num_kv_heads, hf.config.num_kv_heads);
  EXPECT_EQ(got->config.head_dim, hf.config.head_dim);
  EXPECT_EQ(got->config.rope.type, hf.config.rope.type);
  EXPECT_EQ(got->config.rope.theta, hf.config.rope.theta);
  EXPECT_EQ(got->config.rope.original_max_positions,
            hf.config.rope.original_max_positions);
  EXPECT_EQ(got->config.max_positions, 2048);
  ::llmpack::testing::ExpectSamePackageTensors(tmp_.path() / "onnx_pkg",
                                               tmp_.path() / "hf_pkg", false);
}

TEST_F(OnnxVariantTest, Float16WeightsBehindCasts) {
  LLMPACK_REQUIRE_FIXTURES();
  absl::StatusOr<Manifest> got = ConvertRewritten(
      kQwen3,
      [](onnx::ModelProto& m) {
        // Every weight becomes an f16 initializer cast to f32 in the graph.
        std::set<std::string> weights;
        for (const auto& [index, name] : MatMulWeights(m)) weights.insert(name);
        for (const onnx::TensorProto& t : m.graph().initializer()) {
          if (t.name().starts_with("m.")) weights.insert(t.name());
        }
        for (const std::string& name : weights) {
          onnx::TensorProto* t = Initializer(m, name);
          std::vector<uint16_t> half;
          for (float f : Floats(*t)) half.push_back(F32ToF16(f));
          t->set_data_type(onnx::TensorProto::FLOAT16);
          t->set_raw_data(std::string(
              reinterpret_cast<const char*>(half.data()), half.size() * 2));
          t->set_name(name + "_f16");
          onnx::NodeProto cast;
          cast.set_op_type("Cast");
          cast.add_input(name + "_f16");
          cast.add_output(name);
          auto* to = cast.add_attribute();
          to->set_name("to");
          to->set_type(onnx::AttributeProto::INT);
          to->set_i(onnx::TensorProto::FLOAT);
          InsertNode(m, 0, std::move(cast));
        }
      },
      std::nullopt);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->source.dtype, "f16");
  EXPECT_EQ(got->weights_dtype, "f16");
  ::llmpack::testing::ExpectSamePackageTensors(tmp_.path() / "onnx_pkg",
                                               HfPackage(), false);
}

TEST_F(OnnxVariantTest, QkvBiasesAreRecovered) {
  LLMPACK_REQUIRE_FIXTURES();
  // bias values by the MatMul weight they follow
  std::map<std::string, std::vector<float>> biases;
  absl::StatusOr<Manifest> got = ConvertRewritten(
      kLlamaDynamo,
      [&](onnx::ModelProto& m) {
        std::map<std::string, int> readers;
        for (const onnx::NodeProto& n : m.graph().node()) {
          if (n.op_type() == "MatMul") ++readers[n.input(0)];
        }
        auto weights = MatMulWeights(m);
        for (auto it = weights.rbegin(); it != weights.rend(); ++it) {
          onnx::NodeProto* mm = m.mutable_graph()->mutable_node(it->first);
          if (readers[mm->input(0)] != 3) continue;  // not q/k/v
          const int64_t out = Initializer(m, it->second)->dims(1);
          std::vector<float> b(out);
          for (int64_t j = 0; j < out; ++j) {
            b[j] = 0.001f * static_cast<float>(biases.size() * 100 + j);
          }
          onnx::TensorProto* t = m.mutable_graph()->add_initializer();
          t->set_name(it->second + "_bias");
          t->set_data_type(onnx::TensorProto::FLOAT);
          t->add_dims(out);
          SetFloats(*t, b);
          biases[it->second] = b;
          const std::string result = mm->output(0);
          mm->set_output(0, result + "_nobias");
          onnx::NodeProto add;
          add.set_op_type("Add");
          add.add_input(result + "_nobias");
          add.add_input(it->second + "_bias");
          add.add_output(result);
          InsertNode(m, it->first + 1, std::move(add));
        }
      },
      std::nullopt);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(biases.size(), 9u);
  EXPECT_TRUE(got->config.qkv_bias);
  EXPECT_EQ(got->config.family, "qwen2");
  // Each recovered bias must be the one added after its own projection:
  // the fixture's dynamo export emits each layer's q, k, v MatMuls in order.
  std::vector<std::vector<float>> found;
  for (int layer = 0; layer < 3; ++layer) {
    auto reader =
        TensorFileReader::Open(tmp_.path() / "onnx_pkg" /
                               ("block_00" + std::to_string(layer) + ".bin"));
    ASSERT_TRUE(reader.ok()) << reader.status();
    for (const char* name : {"self_attn.q_proj.bias", "self_attn.k_proj.bias",
                             "self_attn.v_proj.bias"}) {
      absl::StatusOr<const TensorInfo*> info = reader->Get(name);
      ASSERT_TRUE(info.ok()) << info.status();
      std::vector<float> v((*info)->num_elements());
      ASSERT_TRUE(
          reader
              ->ReadTensor(**info,
                           absl::MakeSpan(reinterpret_cast<uint8_t*>(v.data()),
                                          v.size() * 4),
                           true)
              .ok());
      found.push_back(v);
    }
  }
  // Biases were numbered in reverse node order (q of layer 0 last).
  std::vector<std::vector<float>> expected;
  for (int k = 8; k >= 0; --k) {
    std::vector<float> b;
    for (const auto& [name, values] : biases) {
      if (std::lround(values[0] * 1000) == k * 100) b = values;
    }
    expected.push_back(b);
  }
  EXPECT_EQ(found, expected);
}

}  // namespace
}  // namespace llmpack::onnx_import
