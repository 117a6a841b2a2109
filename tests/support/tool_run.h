// Runs a built command-line tool (<build>/tools/<name>) from a test and
// captures what it prints. Thread safety: no shared state; safe to call from
// several tests at once.
#ifndef LLMPACK_TESTS_SUPPORT_TOOL_RUN_H_
#define LLMPACK_TESTS_SUPPORT_TOOL_RUN_H_

#include <string>

namespace llmpack::testing {

struct ToolRun {
  // The tool's exit status; -1 when it could not be started or did not exit
  // normally (e.g. killed by a signal).
  int exit_code = -1;
  std::string output;  // stdout (and stderr when merged)
};

// Runs `<BinaryDir()>/tools/<tool> <args>` through the shell, so `args` may
// quote and redirect. With `merge_stderr`, stderr is captured too (2>&1).
ToolRun RunTool(const std::string& tool, const std::string& args,
                bool merge_stderr);

}  // namespace llmpack::testing

#endif  // LLMPACK_TESTS_SUPPORT_TOOL_RUN_H_
