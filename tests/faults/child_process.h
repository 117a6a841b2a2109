// Runs a built tool as a real child process (fork + exec, no shell) with
// resource limits, measures it with wait4, and optionally traces its system
// calls with ptrace so a test can SIGKILL it at an exact point: e.g. when it
// is about to create its third block file or rename its staging folder.
//
// Thread safety: RunChild waits for any traced thread of its own child only;
// call it from one test thread at a time (ptrace ties the tracee to the
// calling thread).
#ifndef LLMPACK_TESTS_FAULTS_CHILD_PROCESS_H_
#define LLMPACK_TESTS_FAULTS_CHILD_PROCESS_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace llmpack::testing {

struct ChildOptions {
  std::vector<std::string> argv;     // argv[0]: the executable's path
  std::vector<std::string> env;      // NAME=VALUE added to the environment
  uint64_t address_space_limit = 0;  // RLIMIT_AS in bytes; 0: unlimited
  // RLIMIT_FSIZE in bytes, with SIGXFSZ ignored so a write past it fails
  // with EFBIG as on a full disk; 0: unlimited.
  uint64_t file_size_limit = 0;
};

struct ChildResult {
  int exit_code = -1;  // -1 when it did not exit normally
  int signal = 0;      // the signal that ended it, if any
  bool killed_by_hook = false;
  uint64_t max_rss_bytes = 0;  // wait4's ru_maxrss
  std::string output;          // stdout and stderr
};

// One system call about to run in the child (syscall-entry stop). Paths are
// as the child passed them; for calls on a descriptor (write, pwrite64,
// fsync, ftruncate) `path` is what the descriptor refers to.
struct SyscallEntry {
  std::string name;    // "openat", "mkdir", "write", "pwrite64", "rename",
                       // "unlink", "fsync", "ftruncate"
  std::string path;    // first path (or the descriptor's file)
  std::string path2;   // rename target
  uint64_t flags = 0;  // openat flags, renameat2 flags (0 for rename)
};

enum class HookAction { kContinue, kKill };

// Called at every decoded syscall entry of every thread while the child is
// stopped there; kKill sends SIGKILL at once, so that call never runs.
using SyscallHook = std::function<HookAction(const SyscallEntry&)>;

// Runs the child to the end. With a hook the child runs under ptrace;
// without one it runs untraced.
ChildResult RunChild(const ChildOptions& options,
                     const SyscallHook& hook = nullptr);

// <build>/tools/<name>.
std::string ToolPath(const std::string& name);

}  // namespace llmpack::testing

#endif  // LLMPACK_TESTS_FAULTS_CHILD_PROCESS_H_
