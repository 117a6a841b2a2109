// NumPy .npy logits files (verify::ParseNpy).
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz/fuzz_util.h"
#include "verify/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace llmpack;
  auto array = verify::ParseNpy(std::string(fuzz::AsText(data, size)), "x.npy");
  if (!array.ok()) return 0;
  uint64_t elements = 1;
  for (int64_t d : array->shape) {
    fuzz::Check(d >= 0, "non-negative dims");
    elements *= static_cast<uint64_t>(d);
  }
  fuzz::Check(elements == array->data.size(), "data matches the shape");
  return 0;
}
