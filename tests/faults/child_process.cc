#include "faults/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "support/test_paths.h"

namespace llmpack::testing {
namespace {

// Reads a NUL-terminated string from the tracee's memory.
std::string ReadTraceeString(pid_t tid, uint64_t address) {
  std::string out;
  char buf[256];
  while (out.size() < 8192) {
    iovec local{buf, sizeof(buf)};
    iovec remote{reinterpret_cast<void*>(address + out.size()), sizeof(buf)};
    const ssize_t n = ::process_vm_readv(tid, &local, 1, &remote, 1, 0);
    if (n <= 0) break;
    for (ssize_t i = 0; i < n; ++i) {
      if (buf[i] == '\0') return out;
      out.push_back(buf[i]);
    }
  }
  return out;
}

std::string FdPath(pid_t tid, uint64_t fd) {
  const std::string link =
      "/proc/" + std::to_string(tid) + "/fd/" + std::to_string(fd);
  char buf[4096];
  const ssize_t n = ::readlink(link.c_str(), buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

// The calls a file writer makes, with their path arguments decoded; false
// for any other call (the hook is not asked about it).
bool Decode(pid_t tid, const __ptrace_syscall_info& info, SyscallEntry* e) {
  const uint64_t* a = info.entry.args;
  switch (info.entry.nr) {
    case SYS_openat:
      *e = {"openat", ReadTraceeString(tid, a[1]), "", a[2]};
      return true;
    case SYS_mkdir:
      *e = {"mkdir", ReadTraceeString(tid, a[0]), "", 0};
      return true;
    case SYS_mkdirat:
      *e = {"mkdir", ReadTraceeString(tid, a[1]), "", 0};
      return true;
    case SYS_rename:
      *e = {"rename", ReadTraceeString(tid, a[0]), ReadTraceeString(tid, a[1]),
            0};
      return true;
    case SYS_renameat:
    case SYS_renameat2:
      *e = {"rename", ReadTraceeString(tid, a[1]), ReadTraceeString(tid, a[3]),
            info.entry.nr == SYS_renameat2 ? a[4] : 0};
      return true;
    case SYS_unlink:
    case SYS_rmdir:
      *e = {"unlink", ReadTraceeString(tid, a[0]), "", 0};
      return true;
    case SYS_unlinkat:
      *e = {"unlink", ReadTraceeString(tid, a[1]), "", a[2]};
      return true;
    case SYS_write:
    case SYS_pwrite64:
    case SYS_writev:
    case SYS_pwritev:
      *e = {info.entry.nr == SYS_pwrite64 ? "pwrite64" : "write",
            FdPath(tid, a[0]), "", 0};
      return true;
    case SYS_fsync:
    case SYS_ftruncate:
      *e = {info.entry.nr == SYS_fsync ? "fsync" : "ftruncate",
            FdPath(tid, a[0]), "", 0};
      return true;
    default:
      return false;
  }
}

[[noreturn]] void ExecChild(const ChildOptions& o, int out_fd, bool traced) {
  ::dup2(out_fd, STDOUT_FILENO);
  ::dup2(out_fd, STDERR_FILENO);
  if (o.address_space_limit != 0) {
    rlimit r{o.address_space_limit, o.address_space_limit};
    ::setrlimit(RLIMIT_AS, &r);
  }
  if (o.file_size_limit != 0) {
    ::signal(SIGXFSZ, SIG_IGN);  // survives exec: writes then fail EFBIG
    rlimit r{o.file_size_limit, o.file_size_limit};
    ::setrlimit(RLIMIT_FSIZE, &r);
  }
  for (const std::string& kv : o.env) ::putenv(const_cast<char*>(kv.c_str()));
  std::vector<char*> argv;
  for (const std::string& a : o.argv)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  if (traced) {
    // LeakSanitizer stops the world with ptrace, which a traced process
    // cannot: leak checks of the tools run in the untraced tests instead.
    // (A static buffer: no allocation between fork and exec.)
    static char asan_options[1024];
    const char* old = ::getenv("ASAN_OPTIONS");
    std::snprintf(asan_options, sizeof(asan_options),
                  "ASAN_OPTIONS=%s%sdetect_leaks=0", old ? old : "",
                  old && *old ? ":" : "");
    ::putenv(asan_options);
    if (::ptrace(PTRACE_TRACEME, 0, nullptr, nullptr) != 0) {
      std::fprintf(stderr, "ptrace(PTRACE_TRACEME) failed: %s\n",
                   std::strerror(errno));
      ::_exit(126);
    }
    ::raise(SIGSTOP);  // the tracer sets its options, then resumes us
  }
  ::execv(argv[0], argv.data());
  std::fprintf(stderr, "exec %s failed\n", argv[0]);
  ::_exit(127);
}

void Finish(int status, const rusage& ru, ChildResult* r) {
  if (WIFEXITED(status)) r->exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r->signal = WTERMSIG(status);
  r->max_rss_bytes = static_cast<uint64_t>(ru.ru_maxrss) * 1024;
}

// Drives a traced child until it is gone: every thread stops at each syscall
// entry and exit; the hook sees the entries.
void Trace(pid_t pid, const SyscallHook& hook, ChildResult* r) {
  int status = 0;
  rusage ru{};
  ::wait4(pid, &status, __WALL, &ru);  // the SIGSTOP before exec
  if (!WIFSTOPPED(status)) {           // could not be traced
    Finish(status, ru, r);
    return;
  }
  ::ptrace(PTRACE_SETOPTIONS, pid, nullptr,
           PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACECLONE | PTRACE_O_EXITKILL);
  ::ptrace(PTRACE_SYSCALL, pid, nullptr, nullptr);
  bool killed = false;
  while (true) {
    const pid_t tid = ::wait4(-1, &status, __WALL, &ru);
    if (tid < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (WIFEXITED(status) || WIFSIGNALED(status)) {
      if (tid == pid) {
        Finish(status, ru, r);
        break;
      }
      continue;
    }
    if (!WIFSTOPPED(status)) continue;
    const int sig = WSTOPSIG(status);
    int deliver = 0;
    if (sig == (SIGTRAP | 0x80) && !killed) {
      __ptrace_syscall_info info{};
      SyscallEntry entry;
      if (::ptrace(PTRACE_GET_SYSCALL_INFO, tid, sizeof(info), &info) > 0 &&
          info.op == PTRACE_SYSCALL_INFO_ENTRY && Decode(tid, info, &entry) &&
          hook(entry) == HookAction::kKill) {
        ::kill(pid, SIGKILL);
        killed = true;
        r->killed_by_hook = true;
      }
    } else if (sig != SIGTRAP && sig != (SIGTRAP | 0x80) &&
               !(sig == SIGSTOP && (status >> 16) == 0)) {
      deliver = sig;  // a real signal for the child
    }
    // New threads start with a SIGSTOP that is not passed on; event stops
    // (clone) carry SIGTRAP with the event in the high bits.
    if (sig == SIGSTOP) deliver = 0;
    ::ptrace(PTRACE_SYSCALL, tid, nullptr,
             reinterpret_cast<void*>(static_cast<intptr_t>(deliver)));
  }
}

}  // namespace

ChildResult RunChild(const ChildOptions& options, const SyscallHook& hook) {
  ChildResult result;
  char out_path[] = "/tmp/llmpack-child-XXXXXX";
  const int out_fd = ::mkstemp(out_path);
  if (out_fd < 0) return result;
  ::unlink(out_path);
  const pid_t pid = ::fork();
  if (pid == 0) ExecChild(options, out_fd, hook != nullptr);
  if (pid > 0) {
    if (hook) {
      Trace(pid, hook, &result);
    } else {
      int status = 0;
      rusage ru{};
      while (::wait4(pid, &status, 0, &ru) < 0 && errno == EINTR) {
      }
      Finish(status, ru, &result);
    }
  }
  ::lseek(out_fd, 0, SEEK_SET);
  char buf[4096];
  ssize_t n;
  while ((n = ::read(out_fd, buf, sizeof(buf))) > 0) {
    result.output.append(buf, static_cast<size_t>(n));
  }
  ::close(out_fd);
  return result;
}

std::string ToolPath(const std::string& name) {
  return (BinaryDir() / "tools" / name).string();
}

}  // namespace llmpack::testing
