// Helpers for ONNX import tests: reading, mutating and writing ModelProtos,
// staging fixture models in temp folders, and comparing packages.
#ifndef LLMPACK_TESTS_ONNX_IMPORT_ONNX_TEST_UTIL_H_
#define LLMPACK_TESTS_ONNX_IMPORT_ONNX_TEST_UTIL_H_

#include <filesystem>
#include <string>
#include <vector>

#include "onnx/onnx_pb.h"

namespace llmpack::testing {

// One ONNX fixture and the Hugging Face folder it was exported from.
struct OnnxFixture {
  std::string label;                              // for test names
  std::filesystem::path model;                    // .onnx file
  std::vector<std::filesystem::path> data_files;  // external data beside it
  std::filesystem::path hf_dir;
};

std::vector<OnnxFixture> OnnxFixtures();

onnx::ModelProto ReadModelProto(const std::filesystem::path& path);
void WriteModelProto(const onnx::ModelProto& model,
                     const std::filesystem::path& path);

// Copies the model (and its data files) into `dir`, plus hf/config.json when
// `with_config`; returns the copied model's path.
std::filesystem::path StageFixture(const OnnxFixture& fixture,
                                   const std::filesystem::path& dir,
                                   bool with_config);

// Adds a gtest failure for every tensor that differs between two packages
// (names, shapes, values). With `upcast_b`, b's f16/bf16 tensors are widened
// to f32 before comparing with a's f32 tensors.
void ExpectSamePackageTensors(const std::filesystem::path& a,
                              const std::filesystem::path& b, bool upcast_b);

}  // namespace llmpack::testing

#endif  // LLMPACK_TESTS_ONNX_IMPORT_ONNX_TEST_UTIL_H_
