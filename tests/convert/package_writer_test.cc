// The package writer passes quantized (q4) source tensors through unchanged,
// checks their size against the format first, and refuses to convert them
// to a float output dtype.
#include "convert/package_writer.h"

#include <map>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "llmpack/package_layout.h"
#include "llmpack/tensor_file.h"
#include "runtime/test_package.h"
#include "support/test_paths.h"

namespace llmpack::convert {
namespace {

namespace fs = std::filesystem;
using ::llmpack::testing::TinyConfig;
using ::testing::HasSubstr;

// Zero f32 tensors of the config's shapes, except `q4_name`, handed over as
// q4 (group 8, f16 scales, zero points) with `q4_bytes` bytes of data.
class FakeSource : public TensorSource {
 public:
  FakeSource(const ModelConfig& config, std::string q4_name, size_t q4_bytes)
      : q4_name_(std::move(q4_name)) {
    for (const ExpectedFile& f : ExpectedPackageFiles(config)) {
      for (const ExpectedTensor& t : f.tensors) {
        shapes_[HuggingFaceTensorName(f, t)] = t.shape;
      }
    }
    q4_data_.resize(q4_bytes);
    for (size_t i = 0; i < q4_bytes; ++i) q4_data_[i] = static_cast<uint8_t>(i);
  }
  absl::StatusOr<SourceTensor> Get(const std::string& name) override {
    const std::vector<int64_t>& shape = shapes_.at(name);
    if (name == q4_name_) {
      return SourceTensor{name,
                          DType::kQ4,
                          shape,
                          q4_data_,
                          nullptr,
                          8,
                          static_cast<uint16_t>(DType::kF16),
                          format::kQuantFlagZeroPoint};
    }
    auto zeros = std::make_shared<std::vector<uint8_t>>(
        FloatTensorBytes(DType::kF32, shape));
    return SourceTensor{name, DType::kF32, shape, *zeros, zeros};
  }

 private:
  std::map<std::string, std::vector<int64_t>> shapes_;
  std::string q4_name_;
  std::vector<uint8_t> q4_data_;
};

constexpr char kUp[] = "model.layers.0.mlp.up_proj.weight";  // [44, 32]
// 44 rows of 16 code bytes + 4 f16 scales + 2 zero-point bytes.
constexpr size_t kUpQ4Bytes = 44 * (16 + 8 + 2);

TEST(PackageWriterQuantTest, PassesQ4TensorsThroughUnchanged) {
  testing::ScopedTempDir tmp;
  FakeSource source(TinyConfig(), kUp, kUpQ4Bytes);
  WritePackageOptions options;
  options.output_dir = tmp.path() / "pkg";
  auto manifest = WritePackage(TinyConfig(), {}, source, options);
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  auto reader = TensorFileReader::Open(options.output_dir / "block_000.bin");
  ASSERT_TRUE(reader.ok()) << reader.status();
  const TensorInfo& up = *reader->Find(kUpProj);
  EXPECT_EQ(up.dtype, DType::kQ4);
  EXPECT_EQ(up.group_size, 8u);
  EXPECT_EQ(up.quant_flags, format::kQuantFlagZeroPoint);
  std::vector<uint8_t> bytes(up.size_bytes);
  ASSERT_EQ(bytes.size(), kUpQ4Bytes);
  ASSERT_TRUE(reader->ReadTensor(up, absl::MakeSpan(bytes), true).ok());
  for (size_t i = 0; i < bytes.size(); ++i) {
    ASSERT_EQ(bytes[i], static_cast<uint8_t>(i)) << "byte " << i;
  }
  EXPECT_EQ(reader->Find(kGateProj)->dtype, DType::kF32);
}

TEST(PackageWriterQuantTest, RefusesWrongQ4SizeAndFloatOutput) {
  testing::ScopedTempDir tmp;
  WritePackageOptions options;
  options.output_dir = tmp.path() / "pkg";
  FakeSource short_source(TinyConfig(), kUp, kUpQ4Bytes - 1);
  EXPECT_THAT(
      std::string(WritePackage(TinyConfig(), {}, short_source, options)
                      .status()
                      .message()),
      HasSubstr("tensor model.layers.0.mlp.up_proj.weight [44, 32] q4 holds "
                "1143 bytes, expected 1144"));
  EXPECT_FALSE(fs::exists(options.output_dir));
  FakeSource source(TinyConfig(), kUp, kUpQ4Bytes);
  options.output_dtype = DType::kF16;
  EXPECT_THAT(
      std::string(
          WritePackage(TinyConfig(), {}, source, options).status().message()),
      HasSubstr("is q4 and cannot be converted to f16"));
  EXPECT_FALSE(fs::exists(options.output_dir));
}

}  // namespace
}  // namespace llmpack::convert
