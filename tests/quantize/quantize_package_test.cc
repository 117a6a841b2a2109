// QuantizePackage end to end on a synthetic package (every Linear and
// lm_head quantized, the rest untouched, manifest and report honest) and on
// trained-llama with calibration; every refusal leaves nothing behind.
#include "quantize/quantize_package.h"

#include <cmath>
#include <fstream>
#include <set>
#include <string>

#include "commands/quant_command.h"
#include "gtest/gtest.h"
#include "llmpack/file_util.h"
#include "llmpack/manifest.h"
#include "llmpack/package_layout.h"
#include "llmpack/tensor_file.h"
#include "quant/tensor_f32.h"
#include "runtime/fixture_packages.h"
#include "runtime/test_package.h"
#include "support/test_paths.h"

namespace llmpack::quantize {
namespace {
namespace fs = std::filesystem;
using testing::ScopedTempDir;

// Entries of a directory (to prove a failed run left no staging folder).
std::set<std::string> Entries(const fs::path& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    out.insert(e.path().filename().string());
  }
  return out;
}

class QuantizePackageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    input_ = tmp_.path() / "f32";
    ASSERT_TRUE(
        testing::WriteTestPackage(input_, testing::TinyConfig(), DType::kF32, 5)
            .ok());
    options_.input_dir = input_;
    options_.output_dir = tmp_.path() / "q4";
    options_.threads = 2;
  }

  // Runs QuantizePackage expecting failure and that nothing was created.
  absl::Status ExpectRefused(const QuantizeOptions& o) {
    const std::set<std::string> before = Entries(tmp_.path());
    absl::StatusOr<QuantizeResult> r = QuantizePackage(o);
    EXPECT_FALSE(r.ok());
    EXPECT_FALSE(fs::exists(o.output_dir));
    EXPECT_EQ(Entries(tmp_.path()), before);
    return r.ok() ? absl::OkStatus() : r.status();
  }

  ScopedTempDir tmp_;
  fs::path input_;
  QuantizeOptions options_;
};

TEST_F(QuantizePackageTest, QuantizesEveryLinearAndKeepsTheRest) {
  absl::StatusOr<QuantizeResult> r = QuantizePackage(options_);
  ASSERT_TRUE(r.ok()) << r.status();
  const ModelConfig config = testing::TinyConfig();
  ASSERT_EQ(r->tensors.size(), static_cast<size_t>(7 * config.num_layers + 1));
  uint64_t weights = 0, bytes = 0;
  for (const ExpectedFile& f : ExpectedPackageFiles(config)) {
    absl::StatusOr<TensorFileReader> in =
        TensorFileReader::Open(input_ / f.file_name, f.kind);
    absl::StatusOr<TensorFileReader> out =
        TensorFileReader::Open(options_.output_dir / f.file_name, f.kind);
    ASSERT_TRUE(in.ok() && out.ok());
    for (const ExpectedTensor& t : f.tensors) {
      const TensorInfo* a = in->Find(t.name);
      const TensorInfo* b = out->Find(t.name);
      ASSERT_NE(b, nullptr) << t.name;
      const bool quantized = t.is_matrix && t.name != kEmbedTokens;
      EXPECT_EQ(b->dtype, quantized ? DType::kQ4 : DType::kF32) << t.name;
      absl::StatusOr<std::vector<float>> va = quant::ReadTensorAsF32(*in, *a);
      absl::StatusOr<std::vector<float>> vb = quant::ReadTensorAsF32(*out, *b);
      ASSERT_TRUE(va.ok() && vb.ok());
      if (!quantized) {
        EXPECT_EQ(*va, *vb) << t.name;
        continue;
      }
      EXPECT_EQ(b->group_size, 32u) << t.name;
      EXPECT_EQ(b->quant_flags, format::kQuantFlagZeroPoint);
      weights += static_cast<uint64_t>(b->num_elements());
      bytes += b->size_bytes;
      double err = 0, ref = 0;
      for (size_t i = 0; i < va->size(); ++i) {
        err += std::pow((*va)[i] - (*vb)[i], 2);
        ref += std::pow((*va)[i], 2);
      }
      // 4-bit group-32 search on uniform weights: ~0.07 relative RMS.
      EXPECT_LT(std::sqrt(err / ref), 0.12) << t.name;
    }
  }
  EXPECT_EQ(r->quantized_weights, weights);
  EXPECT_EQ(r->quantized_bytes, bytes);
  EXPECT_DOUBLE_EQ(r->bits_per_weight, 8.0 * bytes / weights);

  absl::StatusOr<Manifest> m = ReadManifest(options_.output_dir);
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(VerifyPackageFiles(options_.output_dir, *m, true).ok());
  const nlohmann::json& q = m->extensions["quantization"];
  EXPECT_EQ(q["method"], "search");
  EXPECT_EQ(q["tensors"].size(), r->tensors.size());
  EXPECT_EQ(q["tensors"][0]["dtype"], "q4");
  EXPECT_EQ(q["tensors"][0]["group_size"], 32);
  EXPECT_EQ(q["tensors"][0]["scale_dtype"], "f16");
  EXPECT_EQ(q["tensors"][0]["zero_point"], true);
  EXPECT_DOUBLE_EQ(q["bits_per_weight"].get<double>(), r->bits_per_weight);
  EXPECT_EQ(m->config.hidden_size, config.hidden_size);

  const nlohmann::json report = commands::QuantizeReportJson(*r);
  ASSERT_EQ(report["tensors"].size(), r->tensors.size());
  for (const auto& t : report["tensors"]) {
    EXPECT_GT(t["rel_rms_error"].get<double>(), 0.0);
    EXPECT_GT(t["max_abs_error"].get<double>(), 0.0);
  }
}

// Tensors are quantized a chunk of rows at a time; a chunk of a few rows
// (not dividing any tensor) must give the same files and the same error
// report as whole tensors in one chunk.
TEST_F(QuantizePackageTest, ChunkSizeDoesNotChangeTheOutput) {
  for (const char* method : {"rtn", "search"}) {
    QuantizeOptions whole = options_;
    whole.method = method;
    whole.embedding = TensorTarget::kQ8;
    whole.chunk_bytes = uint64_t{1} << 40;
    QuantizeOptions chunked = whole;
    chunked.output_dir = tmp_.path() / "chunked";
    chunked.chunk_bytes = 1000;  // 1..8 rows of the tiny model's matrices
    absl::StatusOr<QuantizeResult> a = QuantizePackage(whole);
    absl::StatusOr<QuantizeResult> b = QuantizePackage(chunked);
    ASSERT_TRUE(a.ok() && b.ok()) << a.status() << b.status();
    ASSERT_EQ(a->manifest.files.size(), b->manifest.files.size());
    for (const ManifestFile& f : a->manifest.files) {
      absl::StatusOr<std::string> x =
          ReadFileToString(whole.output_dir / f.name);
      absl::StatusOr<std::string> y =
          ReadFileToString(chunked.output_dir / f.name);
      ASSERT_TRUE(x.ok() && y.ok()) << f.name;
      EXPECT_TRUE(*x == *y) << method << ": " << f.name << " differs";
    }
    ASSERT_EQ(a->tensors.size(), b->tensors.size());
    for (size_t i = 0; i < a->tensors.size(); ++i) {
      EXPECT_EQ(a->tensors[i].rel_rms, b->tensors[i].rel_rms)
          << a->tensors[i].name;
      EXPECT_EQ(a->tensors[i].max_abs, b->tensors[i].max_abs)
          << a->tensors[i].name;
    }
    fs::remove_all(whole.output_dir);
    fs::remove_all(chunked.output_dir);
  }
}

TEST_F(QuantizePackageTest, Int8EmbeddingRowsDequantizeOneAtATime) {
  options_.dtype = DType::kQ8;
  options_.embedding = TensorTarget::kQ8;
  options_.lm = TensorTarget::kKeep;
  options_.group_size = kPerRowGroup;
  options_.zero_point = false;
  ASSERT_TRUE(QuantizePackage(options_).ok());
  absl::StatusOr<TensorFileReader> out = TensorFileReader::Open(
      options_.output_dir / kEmbeddingFile, format::FileKind::kEmbedding);
  ASSERT_TRUE(out.ok());
  const TensorInfo* e = out->Find(kEmbedTokens);
  ASSERT_EQ(e->dtype, DType::kQ8);
  absl::StatusOr<std::vector<float>> all = quant::ReadTensorAsF32(*out, *e);
  absl::StatusOr<quant::RowLayout> layout =
      quant::MakeRowLayout(quant::FormatOfTensor(*e), e->shape[1]);
  ASSERT_TRUE(all.ok() && layout.ok());
  // Row 5 alone, read at offset + 5 * row_bytes.
  std::vector<uint8_t> row(static_cast<size_t>(layout->row_bytes));
  ASSERT_TRUE(
      out->file()
          .ReadAt(e->offset + 5 * layout->row_bytes, absl::MakeSpan(row))
          .ok());
  std::vector<float> values(static_cast<size_t>(e->shape[1]));
  quant::DequantizeRow(*layout, row.data(), values.data());
  for (int64_t c = 0; c < e->shape[1]; ++c) {
    EXPECT_EQ(values[c], (*all)[5 * e->shape[1] + c]);
  }
  absl::StatusOr<TensorFileReader> lm = TensorFileReader::Open(
      options_.output_dir / kLmFile, format::FileKind::kLm);
  EXPECT_EQ(lm->Find(kLmHead)->dtype, DType::kF32);
}

TEST_F(QuantizePackageTest, AlreadyQuantizedNeedsForce) {
  ASSERT_TRUE(QuantizePackage(options_).ok());
  QuantizeOptions again = options_;
  again.input_dir = options_.output_dir;
  again.output_dir = tmp_.path() / "q4q4";
  const absl::Status s = ExpectRefused(again);
  EXPECT_NE(s.message().find("already quantized"), std::string::npos) << s;
  EXPECT_NE(s.message().find("--force"), std::string::npos) << s;
  again.force = true;
  EXPECT_TRUE(QuantizePackage(again).ok());
}

TEST_F(QuantizePackageTest, BadGroupSizesAreRefused) {
  for (const int64_t g : {int64_t{0}, int64_t{48}, int64_t{-7}}) {
    QuantizeOptions o = options_;
    o.group_size = g;
    const absl::Status s = ExpectRefused(o);
    EXPECT_NE(s.message().find("group size"), std::string::npos) << s;
    EXPECT_NE(s.message().find("32, 64, 128 or row"), std::string::npos) << s;
  }
}

TEST_F(QuantizePackageTest, UnknownMethodIsRefused) {
  options_.method = "magic";
  const absl::Status s = ExpectRefused(options_);
  EXPECT_NE(s.message().find("magic"), std::string::npos) << s;
}

TEST_F(QuantizePackageTest, CalibratedMethodWithoutCalibrationIsRefused) {
  options_.method = "gptq";
  const absl::Status s = ExpectRefused(options_);
  EXPECT_NE(s.message().find("--calib"), std::string::npos) << s;
}

TEST_F(QuantizePackageTest, MissingEmptyOrShortCalibrationIsRefused) {
  options_.method = "weighted";
  options_.calibration_file = tmp_.path() / "absent.txt";
  absl::Status s = ExpectRefused(options_);
  EXPECT_NE(s.message().find("absent.txt"), std::string::npos) << s;

  const fs::path empty = tmp_.path() / "empty.txt";
  std::ofstream(empty).close();
  options_.calibration_file = empty;
  s = ExpectRefused(options_);
  EXPECT_NE(s.message().find("is empty"), std::string::npos) << s;

  // The synthetic package has no tokenizer: calibration is token ids.
  const fs::path few = tmp_.path() / "few.txt";
  std::ofstream(few) << "1 5 7 9 11 13";
  options_.calibration_file = few;
  s = ExpectRefused(options_);
  EXPECT_NE(s.message().find("needs at least 1024"), std::string::npos) << s;
  fs::remove(empty);
  fs::remove(few);
}

TEST_F(QuantizePackageTest, ExistingOutputNeedsForce) {
  fs::create_directories(options_.output_dir);
  absl::StatusOr<QuantizeResult> r = QuantizePackage(options_);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("already exists"), std::string::npos);
  options_.force = true;
  EXPECT_TRUE(QuantizePackage(options_).ok());
}

// Calibration on training text through the real tokenizer, with GPTQ.
TEST(QuantizeFixtureTest, TrainedLlamaGptqWithCalibrationText) {
  LLMPACK_REQUIRE_FIXTURES();
  ScopedTempDir tmp;
  // The first 95% of the corpus is training text; take its beginning.
  std::ifstream corpus(testing::CorpusDir() / "shakespeare.txt");
  std::string text(60000, '\0');
  corpus.read(text.data(), static_cast<std::streamsize>(text.size()));
  const fs::path calib = tmp.path() / "calib.txt";
  std::ofstream(calib) << text;
  QuantizeOptions o;
  o.input_dir = testing::FixturePackages::Get("trained-llama");
  o.output_dir = tmp.path() / "q4";
  o.calibration_file = calib;
  o.calibration_tokens = 2048;
  absl::StatusOr<QuantizeResult> r = QuantizePackage(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GE(r->calibration_tokens, 2048);
  EXPECT_TRUE(fs::exists(o.output_dir / kTokenizerFile));
  absl::StatusOr<Manifest> in = ReadManifest(o.input_dir);
  absl::StatusOr<Manifest> out = ReadManifest(o.output_dir);
  EXPECT_EQ(out->config.chat_template, in->config.chat_template);
  EXPECT_EQ(out->extensions["quantization"]["method"], "gptq");
  EXPECT_DOUBLE_EQ(r->bits_per_weight, 4.625);
  for (const TensorReport& t : r->tensors) {
    EXPECT_EQ(t.method, "gptq") << t.name;
    EXPECT_GT(t.rel_weighted, 0.0) << t.name;
  }
  // The sequential calibration's working copy (hard links to the input) is
  // gone, and writing through it never touched the input package.
  EXPECT_EQ(Entries(tmp.path()), (std::set<std::string>{"calib.txt", "q4"}));
  EXPECT_TRUE(VerifyPackageFiles(o.input_dir, *in, true).ok());
}

}  // namespace
}  // namespace llmpack::quantize
