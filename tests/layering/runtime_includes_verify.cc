// Layering probe (must fail to compile): the runtime may not include the
// verifier, a higher layer.
#include "verify/reference.h"

int LayeringProbeRuntimeIncludesVerify() { return 0; }
