// Attention layouts of other exporters, built by rewriting a fixture graph
// into an equivalent one: precomputed cos/sin tables, packed q/k/v and
// gate/up projections (Split / Slice), ONNX Runtime GenAI's packed q/k/v
// into GroupQueryAttention with cos/sin caches, and a KV cache
// (past_key_values inputs, present outputs).
#include <climits>
#include <cmath>
#include <map>
#include <set>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "llmpack/dtype.h"
#include "onnx_import/onnx_convert.h"
#include "onnx_import/onnx_test_util.h"
#include "support/test_paths.h"

namespace llmpack::onnx_import {
namespace {
using ::llmpack::testing::AddFloats;
using ::llmpack::testing::AddInt64s;
using ::llmpack::testing::Floats;
using ::llmpack::testing::Initializer;
using ::llmpack::testing::InsertNode;
using ::llmpack::testing::kLlamaDynamo;
using ::llmpack::testing::kQwen3;
using ::llmpack::testing::RebuildNodes;
using ::llmpack::testing::RemoveDeadNodes;
using OnnxVariantTest = ::llmpack::testing::OnnxRewriteTest;

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
          AddFloats(m, name, {kRows, static_cast<int64_t>(2 * n)}, *values);
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

// The row-major [in, sum of widths] matrix whose rows are the rows of the
// [in, widths[p]] matrices `parts` side by side (weights of packed MatMuls).
std::vector<float> ConcatColumns(const std::vector<std::vector<float>>& parts,
                                 const std::vector<int64_t>& widths,
                                 int64_t in) {
  std::vector<float> packed;
  for (int64_t r = 0; r < in; ++r) {
    for (size_t p = 0; p < parts.size(); ++p) {
      packed.insert(packed.end(), parts[p].begin() + r * widths[p],
                    parts[p].begin() + (r + 1) * widths[p]);
    }
  }
  return packed;
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
    AddFloats(m, name + "_w", {in, total}, ConcatColumns(parts, widths, in));
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
  RebuildNodes(m, replacement, removed);
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
    AddFloats(m, name, {kRows, static_cast<int64_t>(inv.size())}, *values);
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
    // Stored [in, q | k | v].
    AddFloats(m, tag + "_qkv", {in, total}, ConcatColumns(parts, widths, in));
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
  RebuildNodes(m, before, removed);
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

// Adds a KV cache as exported with past_key_values: per layer, graph inputs
// past_key/past_value are concatenated before the rotated k and the v heads
// are used, and the concatenations are graph outputs (present).
void AddKvCache(onnx::ModelProto& m) {
  std::map<std::string, int> producer;
  for (int i = 0; i < m.graph().node_size(); ++i) {
    for (const std::string& out : m.graph().node(i).output()) producer[out] = i;
  }
  // Walks back from an attention MatMul's right input through the
  // repeat_kv ops (Transpose/Reshape/Expand) to the Unsqueeze that starts
  // them; its input is the [batch, kv_heads, seq, dim] value a cache
  // extends. Empty for MatMuls that are not attention (weights, RoPE).
  auto heads_source = [&](std::string v) -> std::string {
    for (auto it = producer.find(v); it != producer.end();
         it = producer.find(v)) {
      const onnx::NodeProto& p = m.graph().node(it->second);
      if (p.op_type() == "Unsqueeze") return p.input(0);
      if (p.op_type() != "Transpose" && p.op_type() != "Reshape" &&
          p.op_type() != "Expand") {
        break;
      }
      v = p.input(0);
    }
    return "";
  };
  std::vector<std::string> cached;  // k after RoPE, v, per layer
  for (const onnx::NodeProto& n : m.graph().node()) {
    if (n.op_type() != "MatMul") continue;
    if (std::string v = heads_source(n.input(1)); !v.empty()) {
      cached.push_back(v);
    }
  }
  ASSERT_EQ(cached.size(), 6u);  // score and value MatMul of 3 layers
  int index = 0;
  for (const std::string& v : cached) {
    const std::string tag = "cache" + std::to_string(index++);
    m.mutable_graph()->add_input()->set_name("past_" + tag);
    m.mutable_graph()->add_output()->set_name("present_" + tag);
    onnx::NodeProto concat;
    concat.set_op_type("Concat");
    concat.add_input("past_" + tag);
    concat.add_input(v);
    concat.add_output("present_" + tag);
    auto* axis = concat.add_attribute();
    axis->set_name("axis");
    axis->set_type(onnx::AttributeProto::INT);
    axis->set_i(2);
    int first_use = m.graph().node_size();
    for (int i = 0; i < m.graph().node_size(); ++i) {
      onnx::NodeProto* n = m.mutable_graph()->mutable_node(i);
      for (std::string& in : *n->mutable_input()) {
        if (in == v) {
          in = "present_" + tag;
          first_use = std::min(first_use, i);
        }
      }
    }
    InsertNode(m, first_use, std::move(concat));
  }
}

TEST_F(OnnxVariantTest, KvCacheInputsAndPresentOutputs) {
  LLMPACK_REQUIRE_FIXTURES();
  absl::StatusOr<Manifest> got =
      ConvertRewritten(kQwen3, AddKvCache, DType::kF16);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(got->config.qk_norm);
  EXPECT_EQ(got->config.num_kv_heads, 2);
  ::llmpack::testing::ExpectSamePackageTensors(tmp_.path() / "onnx_pkg",
                                               HfPackage(), false);
}

}  // namespace
}  // namespace llmpack::onnx_import
