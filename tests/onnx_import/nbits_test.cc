// MatMulNBits (ONNX Runtime int4) weights: the fixture's Linears quantized in
// the test (block 32; asymmetric with packed uint8 zero points, asymmetric
// with float zero points, symmetric without zero points; K = 176 pads the
// last block). With f32 scales, converting that graph must give exactly the
// package of the same graph with the dequantized weights as plain float
// MatMuls. With scales exact in f16 or bf16, the weights with packed or no
// zero points must be kept as q4, byte for byte what quant::PackRow gives for
// the same codes, scales and zeros; those with float zero points are
// dequantized, and the manifest says why.
#include "onnx_import/nbits.h"

#include <cmath>
#include <cstring>
#include <map>
#include <memory>

#include "commands/convert_command.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "llmpack/package_layout.h"
#include "llmpack/tensor_file.h"
#include "onnx_import/onnx_convert.h"
#include "onnx_import/onnx_test_util.h"
#include "quant/codec.h"
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

// How the test stores scales: f32 as computed (not exact in f16 or bf16),
// rounded to f16 and stored as FLOAT, or rounded to bf16 and stored as
// BFLOAT16 (the codes are computed with the rounded scale, as a quantizer
// targeting that scale type would).
enum class ScaleRounding { kNone, kF16, kBF16 };

// What Quantize put into one MatMulNBits node, by node name.
struct QuantizedWeight {
  int mode = 0;  // 0 symmetric, 1 packed zero points, 2 float zero points
  int64_t rows = 0, cols = 0;              // N, K
  std::vector<std::vector<int>> codes;     // [N][K]
  std::vector<std::vector<float>> scales;  // [N][blocks]
  std::vector<std::vector<int>> zeros;     // [N][blocks]
};

float RoundScale(float scale, ScaleRounding rounding) {
  switch (rounding) {
    case ScaleRounding::kF16:
      return F16ToF32(F32ToF16(scale));
    case ScaleRounding::kBF16:
      return BF16ToF32(F32ToBF16(scale));
    case ScaleRounding::kNone:
      break;
  }
  return scale;
}

// Quantizes every Linear weight of `m`. With `as_nbits` the MatMuls become
// MatMulNBits; otherwise the weights are replaced by their dequantized
// values and the MatMuls stay float. `record` (if given) receives the codes,
// scales and zeros of every node.
void Quantize(onnx::ModelProto& m, bool as_nbits,
              ScaleRounding rounding = ScaleRounding::kNone,
              std::map<std::string, QuantizedWeight>* record = nullptr) {
  int index = 0;
  for (onnx::NodeProto& node : *m.mutable_graph()->mutable_node()) {
    if (node.op_type() != "MatMul") continue;
    onnx::TensorProto* w = Initializer(m, node.input(1));
    if (w == nullptr || w->dims_size() != 2) continue;
    const int64_t k_dim = w->dims(0), n_dim = w->dims(1);  // stored [in, out]
    std::vector<float> stored(k_dim * n_dim);
    std::memcpy(stored.data(), w->raw_data().data(), stored.size() * 4);
    if (node.name().empty()) node.set_name("matmul_" + std::to_string(index));
    const int mode = index++ % 3;  // 0 symmetric, 1 packed zp, 2 float zp
    const int64_t blocks = (k_dim + kBlock - 1) / kBlock;
    QuantizedWeight rec{
        mode,
        n_dim,
        k_dim,
        std::vector<std::vector<int>>(n_dim, std::vector<int>(k_dim)),
        std::vector<std::vector<float>>(n_dim, std::vector<float>(blocks)),
        std::vector<std::vector<int>>(n_dim, std::vector<int>(blocks))};
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
        scale = RoundScale(scale, rounding);
        const float zero =
            mode == 0 ? 8 : std::clamp(std::round(-lo / scale), 0.0f, 15.0f);
        scales[n * blocks + b] = scale;
        zeros[n * blocks + b] = zero;
        rec.scales[n][b] = scale;
        rec.zeros[n][b] = static_cast<int>(zero);
        packed_zeros[n * ((blocks + 1) / 2) + b / 2] |=
            static_cast<uint8_t>(zero) << (4 * (b % 2));
        for (int64_t j = 0; j < kBlock; ++j) {
          const int64_t k = b * kBlock + j;
          float q = zero;  // padding past K
          if (k < k_dim) {
            q = std::clamp(std::round(stored[k * n_dim + n] / scale) + zero,
                           0.0f, 15.0f);
            dequantized[k * n_dim + n] = (q - zero) * scale;
            rec.codes[n][k] = static_cast<int>(q);
          }
          codes[(n * blocks + b) * kBlock / 2 + j / 2] |=
              static_cast<uint8_t>(q) << (4 * (j % 2));
        }
      }
    }
    if (record != nullptr) (*record)[node.name()] = std::move(rec);
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
    if (rounding == ScaleRounding::kBF16) {
      // Stored as BFLOAT16 (bf16 values in f16's range are f16 values too,
      // so FLOAT storage would map them to f16).
      std::vector<uint16_t> bf16(scales.size());
      for (size_t i = 0; i < scales.size(); ++i) bf16[i] = F32ToBF16(scales[i]);
      AddInitializer(m, base + "_scales", onnx::TensorProto::BFLOAT16,
                     bf16.size(), bf16.data(), bf16.size() * 2);
    } else {
      AddInitializer(m, base + "_scales", onnx::TensorProto::FLOAT,
                     scales.size(), scales.data(), scales.size() * 4);
    }
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

fs::path ConvertQuantized(
    const fs::path& dir, bool as_nbits, absl::StatusOr<Manifest>& result,
    ScaleRounding rounding = ScaleRounding::kNone,
    std::map<std::string, QuantizedWeight>* record = nullptr) {
  const auto fx = ::llmpack::testing::OnnxFixtures()[0];  // llama dynamo
  const fs::path model = ::llmpack::testing::StageRewritten(
      fx, dir / "in", false, [&](onnx::ModelProto& proto) {
        Quantize(proto, as_nbits, rounding, record);
      });
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
  // f32 scales of (max - min) / 15 are not exact in f16 or bf16: every
  // weight is dequantized, and the manifest says why.
  const nlohmann::json& plan = nbits->extensions["onnx_import"]["matmulnbits"];
  EXPECT_EQ(plan["kept_q4"], 0);
  EXPECT_EQ(plan["dequantized"], 22);
  for (const nlohmann::json& t : plan["tensors"]) {
    EXPECT_EQ(t["written_as"], "f32") << t.dump();
    const std::string reason = t["reason"];
    if (reason.find("zero points") == std::string::npos) {
      EXPECT_THAT(reason, ::testing::HasSubstr("are not all exact in f16 ("))
          << t.dump();
      EXPECT_THAT(reason, ::testing::HasSubstr(") nor in bf16 (row "));
    }
  }
  // llmconvert prints one note per dequantized weight and a count.
  commands::ConvertSummary summary;
  summary.manifest = *nbits;
  const std::string text = commands::ConvertSummaryText(summary);
  EXPECT_THAT(text,
              ::testing::HasSubstr("note: lm_head.weight (MatMulNBits '"));
  EXPECT_THAT(text, ::testing::HasSubstr("') dequantized to f32: scales '"));
  EXPECT_THAT(text, ::testing::HasSubstr(
                        "MatMulNBits weights: 0 kept as q4, 22 dequantized"));
  EXPECT_EQ(commands::ConvertSummaryJson(summary)["onnx_import"],
            nbits->extensions["onnx_import"]);
}

// Where the package keeps the weight that the manifest calls `hf_name`.
std::pair<std::string, std::string> PackageLocation(const std::string& hf) {
  if (hf == "lm_head.weight") return {"lm.bin", "lm_head.weight"};
  const std::string prefix = "model.layers.";
  const size_t dot = hf.find('.', prefix.size());
  const int layer = std::stoi(hf.substr(prefix.size(), dot - prefix.size()));
  return {BlockFileName(layer), hf.substr(dot + 1)};
}

// Converts the q4-quantized fixture with scales rounded to `rounding` and
// checks every kept tensor's bytes against quant::PackRow of the codes the
// test chose, and every tensor's values against the float graph.
void ExpectKeptAsQ4(ScaleRounding rounding, DType scale_dtype) {
  ScopedTempDir nbits_dir, float_dir;
  absl::StatusOr<Manifest> nbits = absl::UnknownError("not run");
  absl::StatusOr<Manifest> plain = absl::UnknownError("not run");
  std::map<std::string, QuantizedWeight> record;
  const fs::path pkg =
      ConvertQuantized(nbits_dir.path(), true, nbits, rounding, &record);
  const fs::path float_pkg =
      ConvertQuantized(float_dir.path(), false, plain, rounding);
  ASSERT_TRUE(nbits.ok()) << nbits.status();
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(nbits->weights_dtype, "int4");
  const nlohmann::json& plan = nbits->extensions["onnx_import"]["matmulnbits"];
  // 22 weights in turn symmetric, packed zero points, float zero points.
  EXPECT_EQ(plan["kept_q4"], 15);
  EXPECT_EQ(plan["dequantized"], 7);
  int checked = 0;
  for (const nlohmann::json& t : plan["tensors"]) {
    SCOPED_TRACE(t.dump());
    const QuantizedWeight& q = record.at(t["node"].get<std::string>());
    const auto [file, name] = PackageLocation(t["tensor"].get<std::string>());
    auto reader = TensorFileReader::Open(pkg / file);
    auto float_reader = TensorFileReader::Open(float_pkg / file);
    ASSERT_TRUE(reader.ok()) << reader.status();
    ASSERT_TRUE(float_reader.ok()) << float_reader.status();
    const TensorInfo& info = *reader->Find(name);
    const TensorInfo& float_info = *float_reader->Find(name);
    std::vector<float> expected(float_info.num_elements());
    ASSERT_TRUE(float_reader
                    ->ReadTensor(float_info,
                                 {reinterpret_cast<uint8_t*>(expected.data()),
                                  expected.size() * 4},
                                 true)
                    .ok());
    std::vector<uint8_t> bytes(info.size_bytes);
    ASSERT_TRUE(reader->ReadTensor(info, absl::MakeSpan(bytes), true).ok());
    if (q.mode == 2) {
      EXPECT_EQ(t["written_as"], "f32");
      EXPECT_THAT(std::string(t["reason"]),
                  ::testing::HasSubstr("are FLOAT; q4 stores 4-bit integer "
                                       "zero points"));
      EXPECT_EQ(info.dtype, DType::kF32);
      EXPECT_EQ(std::memcmp(bytes.data(), expected.data(), bytes.size()), 0);
      continue;
    }
    EXPECT_EQ(t["written_as"], "q4");
    ASSERT_EQ(info.dtype, DType::kQ4);
    EXPECT_EQ(info.group_size, kBlock);
    EXPECT_EQ(info.scale_dtype, static_cast<uint16_t>(scale_dtype));
    EXPECT_EQ(info.quant_flags, q.mode == 1 ? format::kQuantFlagZeroPoint : 0);
    auto layout = quant::MakeRowLayout(
        {DType::kQ4, kBlock, scale_dtype, q.mode == 1}, q.cols);
    ASSERT_TRUE(layout.ok());
    ASSERT_EQ(bytes.size(), q.rows * layout->row_bytes);
    std::vector<uint8_t> row(layout->row_bytes);
    std::vector<float> values(q.cols);
    for (int64_t r = 0; r < q.rows; ++r) {
      quant::PackRow(*layout, q.codes[r], q.scales[r], q.zeros[r], row.data());
      ASSERT_EQ(
          std::memcmp(row.data(), bytes.data() + r * row.size(), row.size()), 0)
          << "row " << r;
      quant::DequantizeRow(*layout, bytes.data() + r * row.size(),
                           values.data());
      ASSERT_EQ(
          std::memcmp(values.data(), expected.data() + r * q.cols, q.cols * 4),
          0)
          << "row " << r << " dequantizes differently from the float graph";
    }
    ++checked;
  }
  EXPECT_EQ(checked, 15);
}

TEST(MatMulNBits, KeepsF16ExactScalesAsQ4ByteForByte) {
  LLMPACK_REQUIRE_FIXTURES();
  ExpectKeptAsQ4(ScaleRounding::kF16, DType::kF16);
}

TEST(MatMulNBits, KeepsBF16ExactScalesAsQ4ByteForByte) {
  LLMPACK_REQUIRE_FIXTURES();
  ExpectKeptAsQ4(ScaleRounding::kBF16, DType::kBF16);
}

TEST(MatMulNBits, OutputDtypeDequantizesAndSaysSo) {
  LLMPACK_REQUIRE_FIXTURES();
  ScopedTempDir dir;
  const auto fx = ::llmpack::testing::OnnxFixtures()[0];
  const fs::path model = ::llmpack::testing::StageRewritten(
      fx, dir.path() / "in", false, [&](onnx::ModelProto& proto) {
        Quantize(proto, true, ScaleRounding::kF16);
      });
  convert::WritePackageOptions options;
  options.output_dir = dir.path() / "pkg";
  options.output_dtype = DType::kF16;
  absl::StatusOr<Manifest> got = ConvertOnnx(model, options);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->weights_dtype, "f16");
  const nlohmann::json& plan = got->extensions["onnx_import"]["matmulnbits"];
  EXPECT_EQ(plan["kept_q4"], 0);
  for (const nlohmann::json& t : plan["tensors"]) {
    EXPECT_EQ(t["written_as"], "f16");
    EXPECT_EQ(t["reason"], "output dtype f16 was requested (--dtype)");
  }
  auto lm = TensorFileReader::Open(options.output_dir / "lm.bin");
  ASSERT_TRUE(lm.ok());
  EXPECT_EQ(lm->Find("lm_head.weight")->dtype, DType::kF16);
}

// A model holding only the initializers of one MatMulNBits weight, N = 2
// rows of K columns, codes[r][c] = (3 r + c) % 16, packed as ONNX Runtime
// does: [N][blocks][block/2], the padding past K filled with 0xF nibbles (a
// repack must drop them, not copy them).
struct TinyNBits {
  ScopedTempDir dir;
  std::unique_ptr<OnnxModel> model;
  WeightRef weight;
  std::vector<std::vector<int>> codes, zeros;
  std::vector<std::vector<float>> scales;
};

std::unique_ptr<TinyNBits> MakeTinyNBits(int64_t k, int64_t block,
                                         bool with_zero_points,
                                         int32_t scale_type,
                                         const std::vector<float>& scale_pool) {
  auto t = std::make_unique<TinyNBits>();
  const int64_t n = 2, blocks = (k + block - 1) / block;
  std::vector<uint8_t> b(n * blocks * block / 2, 0xFF);
  std::vector<uint8_t> zp(n * ((blocks + 1) / 2), 0xFF);
  std::vector<float> scales_f32;
  std::vector<uint16_t> scales_f16;
  t->codes.assign(n, std::vector<int>(k));
  t->scales.assign(n, std::vector<float>(blocks));
  t->zeros.assign(n, std::vector<int>(blocks, 8));
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t c = 0; c < k; ++c) {
      const int code = static_cast<int>((3 * r + c) % 16);
      t->codes[r][c] = code;
      uint8_t& byte = b[r * blocks * block / 2 + c / 2];
      byte = c % 2 == 0 ? (byte & 0xF0) | code : (byte & 0x0F) | (code << 4);
    }
    for (int64_t j = 0; j < blocks; ++j) {
      const float s = scale_pool[(r * blocks + j) % scale_pool.size()];
      t->scales[r][j] = s;
      scales_f32.push_back(s);
      scales_f16.push_back(F32ToF16(s));
      if (with_zero_points) {
        const int z = static_cast<int>((5 * r + j) % 16);
        t->zeros[r][j] = z;
        uint8_t& byte = zp[r * ((blocks + 1) / 2) + j / 2];
        byte = j % 2 == 0 ? (byte & 0xF0) | z : (byte & 0x0F) | (z << 4);
      }
    }
  }
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  AddInitializer(m, "B", onnx::TensorProto::UINT8, b.size(), b.data(),
                 b.size());
  if (scale_type == onnx::TensorProto::FLOAT16) {
    AddInitializer(m, "scales", scale_type, scales_f16.size(),
                   scales_f16.data(), scales_f16.size() * 2);
  } else {
    AddInitializer(m, "scales", scale_type, scales_f32.size(),
                   scales_f32.data(), scales_f32.size() * 4);
  }
  onnx::NodeProto* node = m.mutable_graph()->add_node();
  node->set_name("tiny");
  node->set_op_type("MatMulNBits");
  node->set_domain("com.microsoft");
  for (const char* input : {"A", "B", "scales"}) node->add_input(input);
  if (with_zero_points) {
    AddInitializer(m, "zp", onnx::TensorProto::UINT8, zp.size(), zp.data(),
                   zp.size());
    node->add_input("zp");
  }
  node->add_output("Y");
  const fs::path path = t->dir.path() / "tiny.onnx";
  ::llmpack::testing::WriteModelProto(m, path);
  auto model = OnnxModel::Load(path);
  EXPECT_TRUE(model.ok()) << model.status();
  t->model = *std::move(model);
  t->weight = {
      "B",
      false,
      {n, k},
      NBitsWeight{"tiny", "scales", with_zero_points ? "zp" : "", 4, block}};
  return t;
}

// Odd K, an odd number of blocks with a short last one, and one block longer
// than the row: the repacked rows equal quant::PackRow's.
TEST(MatMulNBits, RepacksOddShapesLikePackRow) {
  struct Case {
    int64_t k, block;
    bool zero_points;
    int32_t scale_type;
    DType scale_dtype;
    int64_t group;
  } cases[] = {
      {37, 16, true, onnx::TensorProto::FLOAT16, DType::kF16, 16},
      {37, 16, false, onnx::TensorProto::FLOAT, DType::kF16, 16},
      {7, 16, true, onnx::TensorProto::FLOAT, DType::kF16, 7},
      // 3e-7 rounded to bf16 has bits below f16's smallest subnormal step
      // (2^-24): exact in bf16 only.
      {33, 32, true, onnx::TensorProto::FLOAT, DType::kBF16, 32},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message() << "K " << c.k << " block " << c.block);
    const std::vector<float> pool =
        c.scale_dtype == DType::kBF16
            ? std::vector<float>{BF16ToF32(F32ToBF16(3e-7f)), 0.5f}
            : std::vector<float>{0.25f, F16ToF32(F32ToF16(0.1f)), 3.0f};
    auto t = MakeTinyNBits(c.k, c.block, c.zero_points, c.scale_type, pool);
    ASSERT_NE(t->model, nullptr);
    ASSERT_TRUE(ValidateNBits(*t->model, t->weight).ok());
    auto format = MapNBitsToQ4(*t->model, t->weight);
    ASSERT_TRUE(format.ok()) << format.status();
    EXPECT_EQ(format->group_size, c.group);
    EXPECT_EQ(format->scale_dtype, c.scale_dtype);
    EXPECT_EQ(format->zero_point, c.zero_points);
    auto bytes = RepackNBitsAsQ4(*t->model, t->weight, *format);
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    auto layout = quant::MakeRowLayout(*format, c.k);
    ASSERT_TRUE(layout.ok());
    ASSERT_EQ(bytes->size(), 2 * layout->row_bytes);
    std::vector<uint8_t> row(layout->row_bytes);
    for (int r = 0; r < 2; ++r) {
      quant::PackRow(*layout, t->codes[r], t->scales[r], t->zeros[r],
                     row.data());
      EXPECT_EQ(
          std::memcmp(row.data(), bytes->data() + r * row.size(), row.size()),
          0)
          << "row " << r;
    }
  }
}

TEST(MatMulNBits, SaysWhyAWeightCannotStayQ4) {
  // 0.1f is neither an f16 nor a bf16.
  auto t = MakeTinyNBits(37, 16, true, onnx::TensorProto::FLOAT, {0.5f, 0.1f});
  ASSERT_NE(t->model, nullptr);
  auto format = MapNBitsToQ4(*t->model, t->weight);
  ASSERT_FALSE(format.ok());
  EXPECT_THAT(std::string(format.status().message()),
              ::testing::HasSubstr("scales 'scales' are not all exact in f16 "
                                   "(row 0 block 1 = 0.1"));
  t->weight.nbits->bits = 8;
  EXPECT_THAT(
      std::string(MapNBitsToQ4(*t->model, t->weight).status().message()),
      ::testing::HasSubstr("bits is 8; only 4-bit codes map onto q4"));
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
