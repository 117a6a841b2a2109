// MatMulNBits (ONNX Runtime int4) weights: the fixture's Linears quantized in
// the test (block 32; asymmetric with packed uint8 zero points, asymmetric
// with float zero points, symmetric without zero points; K = 176 pads the
// last block). Converting that graph must give exactly the package of the
// same graph with the dequantized weights as plain float MatMuls.
#include <cmath>
#include <cstring>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "onnx_import/onnx_convert.h"
#include "onnx_import/onnx_test_util.h"
#include "support/test_paths.h"

namespace llmpack::onnx_import {
namespace {
namespace fs = std::filesystem;
using ::llmpack::testing::ScopedTempDir;

constexpr int64_t kBlock = 32;

using ::llmpack::testing::Initializer;

onnx::TensorProto* AddInitializer(onnx::ModelProto& m, const std::string& name,
                                  int32_t type, int64_t elements,
                                  const void* data, size_t bytes) {
  onnx::TensorProto* t = m.mutable_graph()->add_initializer();
  t->set_name(name);
  t->set_data_type(type);
  t->add_dims(elements);
  t->set_raw_data(std::string(static_cast<const char*>(data), bytes));
  return t;
}

void AddIntAttr(onnx::NodeProto& n, const char* name, int64_t v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}

// Quantizes every Linear weight of `m`. With `as_nbits` the MatMuls become
// MatMulNBits; otherwise the weights are replaced by their dequantized
// values and the MatMuls stay float.
void Quantize(onnx::ModelProto& m, bool as_nbits) {
  int index = 0;
  for (onnx::NodeProto& node : *m.mutable_graph()->mutable_node()) {
    if (node.op_type() != "MatMul") continue;
    onnx::TensorProto* w = Initializer(m, node.input(1));
    if (w == nullptr || w->dims_size() != 2) continue;
    const int64_t k_dim = w->dims(0), n_dim = w->dims(1);  // stored [in, out]
    std::vector<float> stored(k_dim * n_dim);
    std::memcpy(stored.data(), w->raw_data().data(), stored.size() * 4);
    const int mode = index++ % 3;  // 0 symmetric, 1 packed zp, 2 float zp
    const int64_t blocks = (k_dim + kBlock - 1) / kBlock;
    std::vector<uint8_t> codes(n_dim * blocks * kBlock / 2, 0);
    std::vector<float> scales(n_dim * blocks), zeros(n_dim * blocks);
    std::vector<uint8_t> packed_zeros(n_dim * ((blocks + 1) / 2), 0);
    std::vector<float> dequantized(k_dim * n_dim);  // stored layout
    for (int64_t n = 0; n < n_dim; ++n) {
      for (int64_t b = 0; b < blocks; ++b) {
        float lo = 0, hi = 0, amax = 0;
        for (int64_t k = b * kBlock; k < std::min(k_dim, (b + 1) * kBlock);
             ++k) {
          const float v = stored[k * n_dim + n];
          lo = std::min(lo, v), hi = std::max(hi, v);
          amax = std::max(amax, std::fabs(v));
        }
        float scale = mode == 0 ? amax / 7 : (hi - lo) / 15;
        if (scale == 0) scale = 1;
        const float zero =
            mode == 0 ? 8 : std::clamp(std::round(-lo / scale), 0.0f, 15.0f);
        scales[n * blocks + b] = scale;
        zeros[n * blocks + b] = zero;
        packed_zeros[n * ((blocks + 1) / 2) + b / 2] |=
            static_cast<uint8_t>(zero) << (4 * (b % 2));
        for (int64_t j = 0; j < kBlock; ++j) {
          const int64_t k = b * kBlock + j;
          float q = zero;  // padding past K
          if (k < k_dim) {
            q = std::clamp(std::round(stored[k * n_dim + n] / scale) + zero,
                           0.0f, 15.0f);
            dequantized[k * n_dim + n] = (q - zero) * scale;
          }
          codes[(n * blocks + b) * kBlock / 2 + j / 2] |=
              static_cast<uint8_t>(q) << (4 * (j % 2));
        }
      }
    }
    if (!as_nbits) {
      w->set_raw_data(
          std::string(reinterpret_cast<const char*>(dequantized.data()),
                      dequantized.size() * 4));
      continue;
    }
    const std::string base = node.input(1);
    onnx::TensorProto* b =
        AddInitializer(m, base + "_B", onnx::TensorProto::UINT8, 0,
                       codes.data(), codes.size());
    b->clear_dims();
    b->add_dims(n_dim);
    b->add_dims(blocks);
    b->add_dims(kBlock / 2);
    AddInitializer(m, base + "_scales", onnx::TensorProto::FLOAT, scales.size(),
                   scales.data(), scales.size() * 4);
    node.set_input(1, base + "_B");
    node.add_input(base + "_scales");
    if (mode == 1) {
      AddInitializer(m, base + "_zp", onnx::TensorProto::UINT8,
                     packed_zeros.size(), packed_zeros.data(),
                     packed_zeros.size());
      node.add_input(base + "_zp");
    } else if (mode == 2) {
      AddInitializer(m, base + "_zp", onnx::TensorProto::FLOAT, zeros.size(),
                     zeros.data(), zeros.size() * 4);
      node.add_input(base + "_zp");
    }
    node.set_op_type("MatMulNBits");
    node.set_domain("com.microsoft");
    AddIntAttr(node, "K", k_dim);
    AddIntAttr(node, "N", n_dim);
    AddIntAttr(node, "bits", 4);
    AddIntAttr(node, "block_size", kBlock);
  }
  ASSERT_EQ(index, 22);  // 3 layers x 7 Linears + lm_head
}

fs::path ConvertQuantized(const fs::path& dir, bool as_nbits,
                          absl::StatusOr<Manifest>& result) {
  const auto fx = ::llmpack::testing::OnnxFixtures()[0];  // llama dynamo
  const fs::path model = ::llmpack::testing::StageRewritten(
      fx, dir / "in", false,
      [&](onnx::ModelProto& proto) { Quantize(proto, as_nbits); });
  convert::WritePackageOptions options;
  options.output_dir = dir / "pkg";
  result = ConvertOnnx(model, options);
  return options.output_dir;
}

TEST(MatMulNBits, DequantizesExactlyLikeTheFloatGraph) {
  LLMPACK_REQUIRE_FIXTURES();
  ScopedTempDir nbits_dir, float_dir;
  absl::StatusOr<Manifest> nbits = absl::UnknownError("not run");
  absl::StatusOr<Manifest> plain = absl::UnknownError("not run");
  const fs::path nbits_pkg = ConvertQuantized(nbits_dir.path(), true, nbits);
  const fs::path float_pkg = ConvertQuantized(float_dir.path(), false, plain);
  ASSERT_TRUE(nbits.ok()) << nbits.status();
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(nbits->source.dtype, "int4");
  EXPECT_EQ(nbits->weights_dtype, "f32");
  ::llmpack::testing::ExpectSamePackageTensors(nbits_pkg, float_pkg, false);
}

TEST(MatMulNBits, WrongScaleCountIsNamed) {
  LLMPACK_REQUIRE_FIXTURES();
  ScopedTempDir dir;
  const auto fx = ::llmpack::testing::OnnxFixtures()[0];
  std::string scales;
  const fs::path model = ::llmpack::testing::StageRewritten(
      fx, dir.path() / "in", false, [&](onnx::ModelProto& proto) {
        Quantize(proto, true);
        for (onnx::TensorProto& t :
             *proto.mutable_graph()->mutable_initializer()) {
          if (scales.empty() && t.name().ends_with("_scales")) {
            scales = t.name();
            t.set_dims(0, t.dims(0) - 1);
            t.mutable_raw_data()->resize(t.raw_data().size() - 4);
          }
        }
      });
  convert::WritePackageOptions options;
  options.output_dir = dir.path() / "pkg";
  absl::StatusOr<Manifest> got = ConvertOnnx(model, options);
  ASSERT_FALSE(got.ok());
  EXPECT_THAT(std::string(got.status().message()),
              ::testing::AllOf(::testing::HasSubstr("(MatMulNBits)"),
                               ::testing::HasSubstr("scales '" + scales + "'"),
                               ::testing::HasSubstr("block_size 32")));
}

}  // namespace
}  // namespace llmpack::onnx_import
