// Package manifest.json (ManifestFromJson), and writing back what was read.
#include <cstddef>
#include <cstdint>

#include "fuzz/fuzz_util.h"
#include "llmpack/json_file.h"
#include "llmpack/manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace llmpack;
  auto json = ParseJson(fuzz::AsText(data, size), "manifest.json");
  if (!json.ok()) return 0;
  auto manifest = ManifestFromJson(*json, "manifest.json");
  if (!manifest.ok()) return 0;
  (void)ManifestToJson(*manifest).dump();
  return 0;
}
