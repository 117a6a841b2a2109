// Shared by the libFuzzer targets in this folder: a private temporary folder
// per fuzzing process, for parsers whose public API only takes paths, and a
// trap for broken invariants that no sanitizer would see (an offset past the
// end of a memory-mapped file reads valid page bytes, not poisoned memory).
// Single-threaded, like libFuzzer's default mode.
#ifndef LLMPACK_TESTS_FUZZ_FUZZ_UTIL_H_
#define LLMPACK_TESTS_FUZZ_FUZZ_UTIL_H_

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

namespace llmpack::fuzz {

// The folder, created on first use and removed by an atexit handler (a
// crash leaves it for inspection). libFuzzer ends a -max_total_time run
// without running atexit handlers, so scripts/ci_fuzz.sh points TMPDIR at a
// folder of its own and removes that.
inline const std::filesystem::path& TempDir() {
  static const std::filesystem::path dir = [] {
    std::string templ =
        (std::filesystem::temp_directory_path() / "llmpack-fuzz-XXXXXX")
            .string();
    if (mkdtemp(templ.data()) == nullptr) {
      std::perror("mkdtemp");
      std::abort();
    }
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(TempDir(), ec);
    });
    return std::filesystem::path(templ);
  }();
  return dir;
}

// Writes `bytes` to TempDir()/name (replacing it) and returns the path.
inline std::filesystem::path WriteTemp(std::string_view name,
                                       std::string_view bytes) {
  const std::filesystem::path path = TempDir() / name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    std::abort();
  }
  return path;
}

inline std::string_view AsText(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// A violated invariant of a successful parse is a bug like a crash.
inline void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "invariant broken: %s\n", what);
    std::abort();
  }
}

}  // namespace llmpack::fuzz

#endif  // LLMPACK_TESTS_FUZZ_FUZZ_UTIL_H_
