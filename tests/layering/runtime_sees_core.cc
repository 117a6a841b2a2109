// Layering probe (must compile): the runtime includes its own headers and
// the core's, the layers below it.
#include "llmpack/dtype.h"
#include "runtime/model.h"

int LayeringProbeRuntimeSeesCore() { return 0; }
