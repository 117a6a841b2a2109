#include "onnx_import/onnx_test_util.h"

#include <climits>
#include <fstream>

#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl.h"
#include "gtest/gtest.h"
#include "llmpack/dtype.h"
#include "llmpack/manifest.h"
#include "llmpack/tensor_file.h"
#include "support/test_paths.h"

namespace llmpack::testing {
namespace fs = std::filesystem;

std::vector<OnnxFixture> OnnxFixtures() {
  const fs::path f = FixturesDir();
  return {
      {"llama_dynamo",
       f / "tiny-llama/model_dynamo.onnx",
       {},
       f / "tiny-llama/hf"},
      {"llama_external",
       f / "tiny-llama/model_ext.onnx",
       {f / "tiny-llama/model_ext.onnx.data"},
       f / "tiny-llama/hf"},
      {"qwen3_tied", f / "tiny-qwen3/model.onnx", {}, f / "tiny-qwen3/hf"},
  };
}

onnx::ModelProto ReadModelProto(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  google::protobuf::io::IstreamInputStream raw(&in);
  google::protobuf::io::CodedInputStream stream(&raw);
  stream.SetTotalBytesLimit(INT_MAX);
  onnx::ModelProto model;
  EXPECT_TRUE(model.ParseFromCodedStream(&stream)) << path;
  return model;
}

void WriteModelProto(const onnx::ModelProto& model, const fs::path& path) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  ASSERT_TRUE(model.SerializeToOstream(&out)) << path;
}

fs::path StageFixture(const OnnxFixture& fixture, const fs::path& dir,
                      bool with_config) {
  fs::create_directories(dir);
  // Copies, not links: the model's folder is where external data must live.
  fs::copy_file(fixture.model, dir / fixture.model.filename());
  for (const fs::path& d : fixture.data_files) {
    fs::copy_file(d, dir / d.filename());
  }
  if (with_config) {
    fs::copy_file(fixture.hf_dir / "config.json", dir / "config.json");
  }
  // Fixture files are read-only; the copies must be editable by tests.
  for (const auto& entry : fs::directory_iterator(dir)) {
    fs::permissions(entry.path(), fs::perms::owner_write,
                    fs::perm_options::add);
  }
  return dir / fixture.model.filename();
}

void ExpectSamePackageTensors(const fs::path& a, const fs::path& b,
                              bool upcast_b) {
  absl::StatusOr<Manifest> ma = ReadManifest(a);
  absl::StatusOr<Manifest> mb = ReadManifest(b);
  ASSERT_TRUE(ma.ok()) << ma.status();
  ASSERT_TRUE(mb.ok()) << mb.status();
  std::vector<std::string> files;
  for (const ManifestFile& f : ma->files) {
    if (f.name.ends_with(".bin")) files.push_back(f.name);
  }
  std::vector<std::string> files_b;
  for (const ManifestFile& f : mb->files) {
    if (f.name.ends_with(".bin")) files_b.push_back(f.name);
  }
  ASSERT_EQ(files, files_b);
  for (const std::string& name : files) {
    auto ra = TensorFileReader::Open(a / name);
    auto rb = TensorFileReader::Open(b / name);
    ASSERT_TRUE(ra.ok()) << ra.status();
    ASSERT_TRUE(rb.ok()) << rb.status();
    ASSERT_EQ(ra->tensors().size(), rb->tensors().size()) << name;
    for (size_t i = 0; i < ra->tensors().size(); ++i) {
      const TensorInfo& ta = ra->tensors()[i];
      const TensorInfo& tb = rb->tensors()[i];
      const std::string where = name + ":" + ta.name;
      ASSERT_EQ(ta.name, tb.name) << name;
      ASSERT_EQ(ta.shape, tb.shape) << where;
      std::vector<uint8_t> da(ta.size_bytes), db(tb.size_bytes);
      ASSERT_TRUE(ra->ReadTensor(ta, absl::MakeSpan(da), true).ok()) << where;
      ASSERT_TRUE(rb->ReadTensor(tb, absl::MakeSpan(db), true).ok()) << where;
      if (upcast_b && tb.dtype != ta.dtype) {
        ASSERT_EQ(ta.dtype, DType::kF32) << where;
        std::vector<float> wide(tb.num_elements());
        ToF32(tb.dtype, db.data(), wide.data(), wide.size());
        db.assign(reinterpret_cast<const uint8_t*>(wide.data()),
                  reinterpret_cast<const uint8_t*>(wide.data() + wide.size()));
      } else {
        ASSERT_EQ(ta.dtype, tb.dtype) << where;
      }
      EXPECT_TRUE(da == db) << where << " differs";
    }
  }
}

}  // namespace llmpack::testing
