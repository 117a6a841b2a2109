// ONNX model loading and graph analysis (onnx_import::OpenOnnx: protobuf
// parse, constant and external-data checks, graph build, role recovery,
// config inference, dtype checks). A seed with external data finds it when
// FUZZ_ONNX_EXTERNAL_DATA names the file: it is copied beside model.onnx.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>

#include "fuzz/fuzz_util.h"
#include "onnx_import/onnx_convert.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace llmpack;
  static const bool external_copied = [] {
    const char* data_file = std::getenv("FUZZ_ONNX_EXTERNAL_DATA");
    if (data_file == nullptr || *data_file == '\0') return false;
    const std::filesystem::path from(data_file);
    std::filesystem::copy_file(from, fuzz::TempDir() / from.filename());
    return true;
  }();
  (void)external_copied;
  const auto path = fuzz::WriteTemp("model.onnx", fuzz::AsText(data, size));
  auto imported = onnx_import::OpenOnnx(path);
  (void)imported;
  return 0;
}
