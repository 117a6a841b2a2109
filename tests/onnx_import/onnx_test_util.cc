#include "onnx_import/onnx_test_util.h"

#include <climits>
#include <cstring>
#include <fstream>
#include <map>
#include <set>

#include "convert/hf_convert.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl.h"
#include "gtest/gtest.h"
#include "llmpack/dtype.h"
#include "llmpack/manifest.h"
#include "llmpack/tensor_file.h"
#include "onnx_import/onnx_convert.h"
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

onnx::TensorProto* AddInt64s(onnx::ModelProto& m, const std::string& name,
                             const std::vector<int64_t>& values) {
  onnx::TensorProto* t = m.mutable_graph()->add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::INT64);
  t->add_dims(static_cast<int64_t>(values.size()));
  for (int64_t v : values) t->add_int64_data(v);
  return t;
}

onnx::TensorProto* AddFloats(onnx::ModelProto& m, const std::string& name,
                             const std::vector<int64_t>& dims,
                             const std::vector<float>& values) {
  onnx::TensorProto* t = m.mutable_graph()->add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t d : dims) t->add_dims(d);
  SetFloats(*t, values);
  return t;
}

void InsertNode(onnx::ModelProto& m, int index, onnx::NodeProto node) {
  auto* nodes = m.mutable_graph()->mutable_node();
  nodes->Add(std::move(node));
  for (int i = nodes->size() - 1; i > index; --i) nodes->SwapElements(i, i - 1);
}

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

void RebuildNodes(
    onnx::ModelProto& m,
    const std::map<int, std::vector<onnx::NodeProto>>& insert_before,
    const std::set<int>& remove) {
  google::protobuf::RepeatedPtrField<onnx::NodeProto> kept;
  for (int i = 0; i < m.graph().node_size(); ++i) {
    if (auto it = insert_before.find(i); it != insert_before.end()) {
      for (const onnx::NodeProto& n : it->second) *kept.Add() = n;
    }
    if (!remove.contains(i)) *kept.Add() = m.graph().node(i);
  }
  m.mutable_graph()->mutable_node()->Swap(&kept);
}

fs::path StageRewritten(const OnnxFixture& fixture, const fs::path& dir,
                        bool with_config,
                        const std::function<void(onnx::ModelProto&)>& edit) {
  const fs::path model = StageFixture(fixture, dir, with_config);
  if (edit) {
    onnx::ModelProto proto = ReadModelProto(model);
    edit(proto);
    WriteModelProto(proto, model);
  }
  return model;
}

absl::StatusOr<Manifest> OnnxRewriteTest::ConvertRewritten(
    FixtureIndex index, const std::function<void(onnx::ModelProto&)>& edit,
    std::optional<DType> dtype) {
  fx_ = OnnxFixtures()[index];
  const fs::path model = StageRewritten(fx_, tmp_.path() / "in", false, edit);
  convert::WritePackageOptions options;
  options.output_dir = tmp_.path() / "onnx_pkg";
  options.output_dtype = dtype;
  return onnx_import::ConvertOnnx(model, options);
}

fs::path OnnxRewriteTest::HfPackage() {
  convert::WritePackageOptions options;
  options.output_dir = tmp_.path() / "hf_pkg";
  absl::StatusOr<Manifest> m = convert::ConvertHuggingFace(fx_.hf_dir, options);
  EXPECT_TRUE(m.ok()) << m.status();
  return options.output_dir;
}

}  // namespace llmpack::testing
