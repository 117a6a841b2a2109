// Helpers for ONNX import tests: reading, mutating and writing ModelProtos,
// staging fixture models in temp folders, and comparing packages.
#ifndef LLMPACK_TESTS_ONNX_IMPORT_ONNX_TEST_UTIL_H_
#define LLMPACK_TESTS_ONNX_IMPORT_ONNX_TEST_UTIL_H_

#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "llmpack/dtype.h"
#include "llmpack/manifest.h"
#include "onnx/onnx_pb.h"
#include "support/test_paths.h"

namespace llmpack::testing {

// One ONNX fixture and the Hugging Face folder it was exported from.
struct OnnxFixture {
  std::string label;                              // for test names
  std::filesystem::path model;                    // .onnx file
  std::vector<std::filesystem::path> data_files;  // external data beside it
  std::filesystem::path hf_dir;
};

std::vector<OnnxFixture> OnnxFixtures();
// Indices into OnnxFixtures().
enum FixtureIndex { kLlamaDynamo = 0, kLlamaExternal = 1, kQwen3 = 2 };

onnx::ModelProto ReadModelProto(const std::filesystem::path& path);
void WriteModelProto(const onnx::ModelProto& model,
                     const std::filesystem::path& path);

// Copies the model (and its data files) into `dir`, plus hf/config.json when
// `with_config`; returns the copied model's path.
std::filesystem::path StageFixture(const OnnxFixture& fixture,
                                   const std::filesystem::path& dir,
                                   bool with_config);
// StageFixture, then the copied graph read, passed to `edit` (when given)
// and written back.
std::filesystem::path StageRewritten(
    const OnnxFixture& fixture, const std::filesystem::path& dir,
    bool with_config, const std::function<void(onnx::ModelProto&)>& edit);

// Adds a gtest failure for every tensor that differs between two packages
// (names, shapes, values). With `upcast_b`, b's f16/bf16 tensors are widened
// to f32 before comparing with a's f32 tensors.
void ExpectSamePackageTensors(const std::filesystem::path& a,
                              const std::filesystem::path& b, bool upcast_b);

// Graph editing for tests that rewrite fixture graphs.
onnx::TensorProto* Initializer(onnx::ModelProto& m, const std::string& name);
std::vector<float> Floats(const onnx::TensorProto& t);  // FLOAT raw_data
void SetFloats(onnx::TensorProto& t, const std::vector<float>& v);
onnx::TensorProto* AddInt64s(onnx::ModelProto& m, const std::string& name,
                             const std::vector<int64_t>& values);
// A FLOAT initializer of shape `dims` holding `values` (as raw_data).
onnx::TensorProto* AddFloats(onnx::ModelProto& m, const std::string& name,
                             const std::vector<int64_t>& dims,
                             const std::vector<float>& values);
// Inserts `node` before the node at `index` (keeps a valid topological order).
void InsertNode(onnx::ModelProto& m, int index, onnx::NodeProto node);
// Every Linear weight: (node index, 2-D initializer read as MatMul input 1).
std::vector<std::pair<int, std::string>> MatMulWeights(onnx::ModelProto& m);
// Rebuilds the node list in order: before node i the nodes of
// `insert_before[i]`, then node i unless `remove` holds i.
void RebuildNodes(
    onnx::ModelProto& m,
    const std::map<int, std::vector<onnx::NodeProto>>& insert_before,
    const std::set<int>& remove);
// Keeps only nodes the graph outputs depend on (in their original order).
void RemoveDeadNodes(onnx::ModelProto& m);

// Stages a fixture without config.json, rewrites its graph, converts it, and
// offers the Hugging Face package of the same fixture to compare with.
class OnnxRewriteTest : public ::testing::Test {
 protected:
  // Converts into tmp_/onnx_pkg, keeping the source dtype unless `dtype`.
  absl::StatusOr<Manifest> ConvertRewritten(
      FixtureIndex index, const std::function<void(onnx::ModelProto&)>& edit,
      std::optional<DType> dtype);
  // Converts the fixture's hf/ folder into tmp_/hf_pkg (its own dtype).
  std::filesystem::path HfPackage();

  ScopedTempDir tmp_;
  OnnxFixture fx_;
};

}  // namespace llmpack::testing

#endif  // LLMPACK_TESTS_ONNX_IMPORT_ONNX_TEST_UTIL_H_
