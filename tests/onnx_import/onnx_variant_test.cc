// Exporter styles the fixtures do not cover, built by rewriting a fixture
// graph into an equivalent one: anonymous names in shuffled node order,
// weights stored [out, in] behind explicit Transpose nodes, fused RMSNorm
// operators (also with the residual Add inside), f16 weights behind Casts,
// and q/k/v biases. Role recovery must not depend on any of it.
#include <cmath>
#include <map>
#include <set>

#include "gtest/gtest.h"
#include "llmpack/dtype.h"
#include "llmpack/tensor_file.h"
#include "onnx_import/onnx_convert.h"
#include "onnx_import/onnx_test_util.h"
#include "support/test_paths.h"

namespace llmpack::onnx_import {
namespace {
using ::llmpack::testing::AddFloats;
using ::llmpack::testing::Floats;
using ::llmpack::testing::Initializer;
using ::llmpack::testing::InsertNode;
using ::llmpack::testing::kLlamaDynamo;
using ::llmpack::testing::kQwen3;
using ::llmpack::testing::MatMulWeights;
using ::llmpack::testing::RebuildNodes;
using ::llmpack::testing::SetFloats;
using OnnxVariantTest = ::llmpack::testing::OnnxRewriteTest;

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
  // The fused node replaces the weight Mul (which is in `removed`).
  std::map<int, std::vector<onnx::NodeProto>> fused;
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
    fused[wmul].push_back(std::move(node));
  }
  ASSERT_FALSE(fused.empty());
  RebuildNodes(m, fused, removed);
  for (const onnx::NodeProto& n : m.graph().node()) {
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
  // The fused node replaces the Add; the norm after it is removed.
  std::map<int, std::vector<onnx::NodeProto>> fused;
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
    fused[it->second].push_back(std::move(skip));
    removed.insert({i, it->second});
  }
  ASSERT_EQ(fused.size(), 6u);  // 3 layers x (post-attention, next/final)
  RebuildNodes(m, fused, removed);
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
          AddFloats(m, it->second + "_bias", {out}, b);
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
