// Layering probe (must fail to compile): the verifier may not include the
// command layer above it.
#include "commands/verify_command.h"

int LayeringProbeVerifyIncludesCommands() { return 0; }
