// Layering probe (must fail to compile): the core may not include any
// library built on it.
#include "tokenizer/tokenizer.h"

int LayeringProbeCoreIncludesTokenizer() { return 0; }
