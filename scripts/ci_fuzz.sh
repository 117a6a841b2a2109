#!/usr/bin/env bash
# CI stage: builds the libFuzzer targets (tests/fuzz, clang-14 with ASan and
# UBSan) in build-fuzz/ and runs each for FUZZ_SECONDS (default 12) over the
# seeds of scripts/fuzz_seeds.sh. Fails on any crash, sanitizer report, leak,
# timeout (FUZZ_TIMEOUT seconds for one input) or input using more than
# FUZZ_RSS_MB. A failing input is left in build-fuzz/artifacts/.
# Longer runs: FUZZ_SECONDS=120 scripts/ci_fuzz.sh [target...]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --packages-only clang-14 libclang-rt-14-dev llvm-14

BUILD=${FUZZ_BUILD_DIR:-build-fuzz}
SECONDS_PER_TARGET=${FUZZ_SECONDS:-12}
TIMEOUT=${FUZZ_TIMEOUT:-10}
RSS_MB=${FUZZ_RSS_MB:-2048}
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
# -O1 with line tables: quicker to build than -O2 -g, still fast to run.
CXX=clang++-14 cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only -DNDEBUG" -DLLMPACK_FUZZ=ON -DLLMPACK_BUILD_TESTS=OFF -DLLMPACK_BUILD_BENCHMARKS=OFF \
  "${launcher[@]}"
cmake --build "$BUILD" --target fuzzers -j"$(nproc)"

scripts/fuzz_seeds.sh "$BUILD" "$BUILD/seeds"
targets=("$@")
if ((${#targets[@]} == 0)); then
  for f in "$BUILD"/tests/fuzz/*_fuzz; do targets+=("$(basename "$f" _fuzz)"); done
fi

ext_data=${LLMPACK_SHARED_DIR:-../shared}/fixtures/tiny-llama/model_ext.onnx.data
[ -f "$ext_data" ] && export FUZZ_ONNX_EXTERNAL_DATA=$(realpath "$ext_data")
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export ASAN_SYMBOLIZER_PATH=/usr/bin/llvm-symbolizer-14

mkdir -p "$BUILD/artifacts" "$BUILD/logs"
# The targets' scratch folders (fuzz_util.h TempDir) go under one folder
# removed on exit: libFuzzer ends a timed run without the atexit handlers
# that delete them, which left two folders in /tmp per CI run.
fuzz_tmp=$(mktemp -d "${TMPDIR:-/tmp}/llmpack-ci-fuzz.XXXXXX")
trap 'rm -rf "$fuzz_tmp"' EXIT
export TMPDIR=$fuzz_tmp
failed=()
for t in "${targets[@]}"; do
  corpus="$BUILD/corpus/$t"
  mkdir -p "$corpus" "$BUILD/seeds/$t"
  log="$BUILD/logs/$t.log"
  # New inputs go to the first folder, so the seeds stay as collected.
  if "$BUILD/tests/fuzz/${t}_fuzz" -max_total_time="$SECONDS_PER_TARGET" \
      -timeout="$TIMEOUT" -rss_limit_mb="$RSS_MB" -print_final_stats=1 \
      -artifact_prefix="$BUILD/artifacts/$t-" "$corpus" "$BUILD/seeds/$t" \
      >"$log" 2>&1; then
    status=ok
  else
    status=FAILED
    failed+=("$t")
  fi
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}')
  last=$(grep -E '#[0-9]+.*(cov|ft):' "$log" | tail -1 |
    grep -oE '(cov|ft): [0-9]+' | tr '\n' ' ')
  printf 'fuzz %-18s %-6s execs %-9s %s\n' "$t" "$status" "${execs:-?}" "$last"
done
if ((${#failed[@]})); then
  for t in "${failed[@]}"; do
    echo "=== $t ($BUILD/logs/$t.log)" >&2
    tail -60 "$BUILD/logs/$t.log" >&2
  done
  echo "ci_fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "ci_fuzz: all ${#targets[@]} fuzzers ran ${SECONDS_PER_TARGET}s each without a finding"
