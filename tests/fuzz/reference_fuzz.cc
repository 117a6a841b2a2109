// Reference outputs (verify::ReadReference): zstd .llmref bundles and the
// fixtures' reference.json, whose logits_file may name the small valid
// ref_logits_0.npy ([2, 4] f32) written beside it.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz/fuzz_util.h"
#include "verify/reference.h"

namespace {

std::string SmallNpy() {
  std::string header =
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 4), }";
  header.resize(118 - 1, ' ');
  header += '\n';
  std::string out = std::string("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  return out + header + std::string(2 * 4 * 4, '\0');
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace llmpack;
  static const bool npy_written = [] {
    llmpack::fuzz::WriteTemp("ref_logits_0.npy", SmallNpy());
    return true;
  }();
  (void)npy_written;
  const auto path = fuzz::WriteTemp("reference", fuzz::AsText(data, size));
  auto bundle = verify::ReadReference(path);
  if (!bundle.ok()) return 0;
  for (const verify::ReferenceCase& c : bundle->cases) {
    const verify::ReferenceLogits& l = c.logits;
    const uint64_t rows = l.positions.size();
    if (l.top_k == 0) {
      fuzz::Check(l.full.size() == rows * static_cast<uint64_t>(l.vocab),
                  "full rows match positions x vocab");
    } else {
      fuzz::Check(l.topk_ids.size() == rows * static_cast<uint64_t>(l.top_k) &&
                      l.topk_values.size() == l.topk_ids.size(),
                  "top-k rows match positions x top_k");
    }
  }
  return 0;
}
