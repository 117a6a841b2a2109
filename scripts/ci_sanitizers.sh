#!/usr/bin/env bash
# CI stage: (a) the whole test suite under AddressSanitizer +
# UndefinedBehaviorSanitizer (build-asan/), (b) the runtime tests (loader,
# thread pool, kernels, model) under ThreadSanitizer (build-tsan/). Both use
# clang-14 and the project-wide -DLLMPACK_SANITIZE option; any report fails
# the stage. Benchmarks are not built; every test of the suite runs.
# -O1 keeps the sanitized build and run inside CI's budget.
# Usage: scripts/ci_sanitizers.sh [asan|tsan]   (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --packages-only clang-14 libclang-rt-14-dev llvm-14

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
export ASAN_SYMBOLIZER_PATH=/usr/bin/llvm-symbolizer-14
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 external_symbolizer_path=/usr/bin/llvm-symbolizer-14"
export ASAN_OPTIONS="halt_on_error=1 detect_leaks=1 abort_on_error=1 strict_string_checks=1 detect_stack_use_after_return=1"
export UBSAN_OPTIONS="halt_on_error=1 print_stacktrace=1"

# configure BUILD_DIR SANITIZERS
configure() {
  CXX=clang++-14 cmake -S . -B "$1" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only -DNDEBUG" \
    -DLLMPACK_SANITIZE="$2" -DLLMPACK_BUILD_BENCHMARKS=OFF "${launcher[@]}"
}

stage=${1:-all}
if [ "$stage" = all ] || [ "$stage" = asan ]; then
  configure build-asan address,undefined
  cmake --build build-asan -j"$(nproc)"
  ctest --test-dir build-asan --output-on-failure -j"$(nproc)"
fi
if [ "$stage" = all ] || [ "$stage" = tsan ]; then
  configure build-tsan thread
  cmake --build build-tsan -j"$(nproc)" --target runtime_test
  # Only runtime_test is built: every other test is a _NOT_BUILT placeholder.
  ctest --test-dir build-tsan --output-on-failure -j"$(nproc)" -E '_NOT_BUILT$'
fi
