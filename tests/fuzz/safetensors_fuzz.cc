// safetensors header and tensor table (convert::SafetensorsFile::Open).
#include <cstddef>
#include <cstdint>
#include <filesystem>

#include "convert/safetensors.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace llmpack;
  const auto path =
      fuzz::WriteTemp("model.safetensors", fuzz::AsText(data, size));
  auto file = convert::SafetensorsFile::Open(path);
  if (!file.ok()) return 0;
  for (const auto& [name, t] : (*file)->tensors()) {
    fuzz::Check(t.begin <= size && t.size <= size - t.begin,
                "tensor bytes inside the file");
    auto bytes = (*file)->Data(t);
    volatile uint8_t sink = 0;
    if (!bytes.empty()) sink = bytes.front() ^ bytes.back();
    (void)sink;
  }
  return 0;
}
