#include "support/tool_run.h"

#include <sys/wait.h>

#include <cstdio>

#include "support/test_paths.h"

namespace llmpack::testing {

ToolRun RunTool(const std::string& tool, const std::string& args,
                bool merge_stderr) {
  const std::string command = (BinaryDir() / "tools" / tool).string() + " " +
                              args + (merge_stderr ? " 2>&1" : "");
  ToolRun run;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return run;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) {
    run.output.append(buffer, n);
  }
  const int status = pclose(pipe);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

}  // namespace llmpack::testing
