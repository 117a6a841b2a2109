// Refusals: fixture graphs mutated in the test (a node dropped or rewired, a
// shape or dtype changed, external data cut or moved) must fail with a
// message naming the problem, and leave no package behind.
#include <fstream>
#include <functional>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "onnx_import/onnx_convert.h"
#include "onnx_import/onnx_test_util.h"
#include "support/test_paths.h"

namespace llmpack::onnx_import {
namespace {
namespace fs = std::filesystem;
using ::llmpack::testing::ScopedTempDir;
using ::testing::AllOf;
using ::testing::HasSubstr;

using ::llmpack::testing::FixtureIndex;
using ::llmpack::testing::kLlamaDynamo;
using ::llmpack::testing::kLlamaExternal;
using ::llmpack::testing::kQwen3;

class OnnxRefusalTest : public ::testing::Test {
 protected:
  // Stages a fixture, lets `mutate` edit its graph, converts, and returns
  // the error message (failing the test if conversion succeeded).
  std::string ConvertMutated(
      FixtureIndex index, const std::function<void(onnx::ModelProto&)>& mutate,
      bool with_config = false) {
    model_ = ::llmpack::testing::StageRewritten(
        ::llmpack::testing::OnnxFixtures()[index], tmp_.path() / "in",
        with_config, mutate);
    return Convert();
  }

  // Copies fixture `index` (with its config.json when `with_config`) to
  // tmp/in and points model_ at the copy.
  void Stage(FixtureIndex index, bool with_config) {
    model_ = ::llmpack::testing::StageFixture(
        ::llmpack::testing::OnnxFixtures()[index], tmp_.path() / "in",
        with_config);
  }

  // Replaces `from` with `to` in the staged config.json; false (file left
  // as it was) when `from` does not occur.
  bool EditStagedConfig(const std::string& from, const std::string& to) {
    const fs::path config = tmp_.path() / "in" / "config.json";
    std::ifstream in(config);
    std::string text((std::istreambuf_iterator<char>(in)), {});
    in.close();
    const size_t at = text.find(from);
    if (at == std::string::npos) return false;
    text.replace(at, from.size(), to);
    std::ofstream(config, std::ios::trunc) << text;
    return true;
  }

  std::string Convert() {
    convert::WritePackageOptions options;
    options.output_dir = tmp_.path() / "pkg";
    absl::StatusOr<Manifest> got = ConvertOnnx(model_, options);
    EXPECT_FALSE(got.ok()) << "conversion unexpectedly succeeded";
    EXPECT_FALSE(fs::exists(options.output_dir));
    return got.ok() ? "" : std::string(got.status().message());
  }

  static onnx::TensorProto* InitializerNamed(onnx::ModelProto& m,
                                             const std::string& name) {
    for (onnx::TensorProto& t : *m.mutable_graph()->mutable_initializer()) {
      if (t.name() == name) return &t;
    }
    ADD_FAILURE() << "fixture has no initializer " << name;
    return nullptr;
  }

  // The MatMul nodes reading `value`, found by dataflow.
  static std::vector<onnx::NodeProto*> MatMulsReading(
      onnx::ModelProto& m, const std::string& value) {
    std::vector<onnx::NodeProto*> found;
    for (onnx::NodeProto& n : *m.mutable_graph()->mutable_node()) {
      if (n.op_type() == "MatMul" && n.input(0) == value) found.push_back(&n);
    }
    return found;
  }

  ScopedTempDir tmp_;
  fs::path model_;
};

TEST_F(OnnxRefusalTest, DroppedNodeIsNamed) {
  LLMPACK_REQUIRE_FIXTURES();
  const std::string msg = ConvertMutated(kLlamaDynamo, [](onnx::ModelProto& m) {
    auto* nodes = m.mutable_graph()->mutable_node();
    for (int i = 0; i < nodes->size(); ++i) {
      if (nodes->Get(i).op_type() == "Sigmoid") {
        nodes->DeleteSubrange(i, 1);
        return;
      }
    }
  });
  EXPECT_THAT(msg, AllOf(HasSubstr("which no node, initializer or graph input "
                                   "provides"),
                         HasSubstr("node was removed")));
}

TEST_F(OnnxRefusalTest, LayerWithTwoAttentionProjectionsIsRefused) {
  LLMPACK_REQUIRE_FIXTURES();
  const std::string msg = ConvertMutated(kLlamaDynamo, [](onnx::ModelProto& m) {
    // Layer 1's attention norm output: the input of the layer's first
    // MatMul after the second Sigmoid-free norm. Find it by dataflow:
    // the normalized value read by exactly three MatMuls, second time.
    std::vector<std::string> qkv_inputs;
    for (const onnx::NodeProto& n : m.graph().node()) {
      if (n.op_type() == "MatMul" &&
          MatMulsReading(m, n.input(0)).size() == 3 &&
          (qkv_inputs.empty() || qkv_inputs.back() != n.input(0))) {
        qkv_inputs.push_back(n.input(0));
      }
    }
    ASSERT_GE(qkv_inputs.size(), 2u);
    // Rewire the last of layer 1's three projections to read the raw
    // residual stream instead: the graph stays valid, the layer does not.
    onnx::NodeProto* third = MatMulsReading(m, qkv_inputs[1])[2];
    third->set_input(0, "embedding");
  });
  EXPECT_THAT(msg, HasSubstr("layer 1: found 2 MatMuls reading the attention "
                             "norm output"));
  EXPECT_THAT(msg, HasSubstr("expected 3"));
}

TEST_F(OnnxRefusalTest, MissingGateIsRefused) {
  LLMPACK_REQUIRE_FIXTURES();
  const std::string msg = ConvertMutated(kLlamaDynamo, [](onnx::ModelProto& m) {
    // Replace layer 0's SiLU (Sigmoid, Mul) by a plain Relu.
    for (onnx::NodeProto& n : *m.mutable_graph()->mutable_node()) {
      if (n.op_type() == "Sigmoid") {
        n.set_op_type("Relu");
        return;
      }
    }
  });
  EXPECT_THAT(msg, HasSubstr("layer 0: neither of the MLP MatMuls feed a "
                             "SiLU"));
}

TEST_F(OnnxRefusalTest, ChangedWeightShapeIsNamed) {
  LLMPACK_REQUIRE_FIXTURES();
  std::string gate;
  const std::string msg =
      ConvertMutated(kLlamaDynamo, [&](onnx::ModelProto& m) {
        // Layer 0's gate weight: the MatMul feeding the first Sigmoid.
        std::string gate_out;
        for (const onnx::NodeProto& n : m.graph().node()) {
          if (n.op_type() == "Sigmoid") {
            gate_out = n.input(0);
            break;
          }
        }
        for (const onnx::NodeProto& n : m.graph().node()) {
          if (n.op_type() == "MatMul" && n.output(0) == gate_out) {
            gate = n.input(1);
          }
        }
        onnx::TensorProto* t = InitializerNamed(m, gate);
        ASSERT_NE(t, nullptr);
        ASSERT_EQ(t->dims_size(), 2);
        // Same bytes, swapped dims: [64, 176] becomes [176, 64].
        const int64_t d0 = t->dims(0);
        t->set_dims(0, t->dims(1));
        t->set_dims(1, d0);
      });
  EXPECT_THAT(msg, AllOf(HasSubstr("layer 0: gate projection '" + gate + "'"),
                         HasSubstr("expected [176, 64]")));
}

TEST_F(OnnxRefusalTest, ShapeNotMatchingDataIsNamed) {
  LLMPACK_REQUIRE_FIXTURES();
  const std::string msg = ConvertMutated(kLlamaDynamo, [](onnx::ModelProto& m) {
    InitializerNamed(m, "m.model.norm.weight")->set_dims(0, 65);
  });
  EXPECT_THAT(msg, AllOf(HasSubstr("'m.model.norm.weight'"),
                         HasSubstr("needs 260 bytes but its raw_data holds "
                                   "256")));
}

TEST_F(OnnxRefusalTest, UnsupportedDTypeIsNamed) {
  LLMPACK_REQUIRE_FIXTURES();
  const std::string msg = ConvertMutated(kQwen3, [](onnx::ModelProto& m) {
    InitializerNamed(m, "m.model.layers.1.self_attn.k_norm.weight")
        ->set_data_type(onnx::TensorProto::INT32);
  });
  EXPECT_THAT(msg, AllOf(HasSubstr("m.model.layers.1.self_attn.k_norm.weight"),
                         HasSubstr("unsupported ONNX dtype INT32")));
}

TEST_F(OnnxRefusalTest, TruncatedExternalDataIsNamed) {
  LLMPACK_REQUIRE_FIXTURES();
  Stage(kLlamaExternal, /*with_config=*/false);
  const fs::path data = tmp_.path() / "in" / "model_ext.onnx.data";
  fs::resize_file(data, fs::file_size(data) / 2);
  const std::string msg = Convert();
  EXPECT_THAT(msg, AllOf(HasSubstr("model_ext.onnx.data"),
                         HasSubstr("truncated"), HasSubstr("tensor '")));
}

TEST_F(OnnxRefusalTest, MissingExternalDataIsNamed) {
  LLMPACK_REQUIRE_FIXTURES();
  Stage(kLlamaExternal, /*with_config=*/false);
  fs::remove(tmp_.path() / "in" / "model_ext.onnx.data");
  EXPECT_THAT(Convert(), AllOf(HasSubstr("model_ext.onnx.data is missing"),
                               HasSubstr("m.model.embed_tokens.weight")));
}

TEST_F(OnnxRefusalTest, ExternalDataOutsideTheModelFolderIsRefused) {
  LLMPACK_REQUIRE_FIXTURES();
  const std::string msg =
      ConvertMutated(kLlamaExternal, [](onnx::ModelProto& m) {
        for (onnx::TensorProto& t : *m.mutable_graph()->mutable_initializer()) {
          for (auto& kv : *t.mutable_external_data()) {
            if (kv.key() == "location")
              kv.set_value("../in/model_ext.onnx.data");
          }
        }
      });
  EXPECT_THAT(msg, HasSubstr("must be a relative path inside the model's "
                             "folder"));
}

TEST_F(OnnxRefusalTest, ExternalDataLengthMismatchIsNamed) {
  LLMPACK_REQUIRE_FIXTURES();
  const std::string msg =
      ConvertMutated(kLlamaExternal, [](onnx::ModelProto& m) {
        for (auto& kv : *InitializerNamed(m, "m.model.embed_tokens.weight")
                             ->mutable_external_data()) {
          if (kv.key() == "length") kv.set_value("1000");
        }
      });
  EXPECT_THAT(msg, AllOf(HasSubstr("m.model.embed_tokens.weight"),
                         HasSubstr("external data length 1000")));
}

TEST_F(OnnxRefusalTest, TruncatedModelFileIsRefused) {
  LLMPACK_REQUIRE_FIXTURES();
  Stage(kLlamaDynamo, /*with_config=*/false);
  fs::resize_file(model_, fs::file_size(model_) * 2 / 3);
  EXPECT_THAT(Convert(), HasSubstr("truncated"));
}

TEST_F(OnnxRefusalTest, ConfigJsonContradictingTheGraphIsNamed) {
  LLMPACK_REQUIRE_FIXTURES();
  Stage(kQwen3, /*with_config=*/true);
  ASSERT_TRUE(EditStagedConfig("\"intermediate_size\": 192",
                               "\"intermediate_size\": 256"));
  EXPECT_THAT(Convert(),
              AllOf(HasSubstr("config.json does not match the ONNX graph"),
                    HasSubstr("ffn_size is 256 but the graph has 192")));
}

TEST_F(OnnxRefusalTest, ConfigJsonRopeContradictingTheGraphIsNamed) {
  LLMPACK_REQUIRE_FIXTURES();
  Stage(kLlamaDynamo, /*with_config=*/true);
  ASSERT_TRUE(
      EditStagedConfig("\"rope_theta\": 500000.0", "\"rope_theta\": 10000.0"));
  EXPECT_THAT(Convert(), AllOf(HasSubstr("does not match the ONNX graph"),
                               HasSubstr("RoPE (llama3, theta 10000)"),
                               HasSubstr("at index 1")));
}

TEST_F(OnnxRefusalTest, IntegerMatMulIsRefusedByName) {
  LLMPACK_REQUIRE_FIXTURES();
  const std::string msg = ConvertMutated(kLlamaDynamo, [](onnx::ModelProto& m) {
    for (onnx::NodeProto& n : *m.mutable_graph()->mutable_node()) {
      if (n.op_type() == "MatMul" && n.name() == "node_linear") {
        n.set_op_type("MatMulInteger");
      }
    }
  });
  EXPECT_THAT(msg, AllOf(HasSubstr("node 'node_linear' (MatMulInteger)"),
                         HasSubstr("quantized weights")));
}

TEST_F(OnnxRefusalTest, MalformedMatMulNBitsIsNamed) {
  LLMPACK_REQUIRE_FIXTURES();
  const std::string msg = ConvertMutated(kLlamaDynamo, [](onnx::ModelProto& m) {
    for (onnx::NodeProto& n : *m.mutable_graph()->mutable_node()) {
      if (n.op_type() == "MatMul" && n.name() == "node_linear") {
        n.set_op_type("MatMulNBits");
        n.set_domain("com.microsoft");
      }
    }
  });
  EXPECT_THAT(msg, AllOf(HasSubstr("node 'node_linear' (MatMulNBits)"),
                         HasSubstr("K and N attributes must be positive"),
                         HasSubstr("no scales input")));
}

}  // namespace
}  // namespace llmpack::onnx_import
