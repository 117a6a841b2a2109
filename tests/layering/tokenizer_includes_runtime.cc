// Layering probe (must fail to compile): the tokenizer and the runtime are
// siblings; neither includes the other.
#include "runtime/model.h"

int LayeringProbeTokenizerIncludesRuntime() { return 0; }
