// Perplexity eval files (verify::LoadEvalSet): windows JSON or token ids.
#include <cstddef>
#include <cstdint>

#include "fuzz/fuzz_util.h"
#include "verify/eval.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace llmpack;
  const auto path = fuzz::WriteTemp("eval", fuzz::AsText(data, size));
  verify::EvalInputOptions options;
  options.window_tokens = 16;
  options.bos_id = 1;
  auto set = verify::LoadEvalSet(path, options);
  (void)set;
  return 0;
}
