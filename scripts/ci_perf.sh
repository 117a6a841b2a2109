#!/usr/bin/env bash
# CI perf regression stage: benchmarks a small synthetic model (bf16 and
# int4, resident and stream) with `llmverify --bench` and compares the
# probe-normalized ratios (decode GB/s / memory bandwidth probe, prefill
# FLOP/s / compute probe, stream read / file-read probe) with the baseline
# committed for this CPU under .ci/perf-baselines/<cpu>/. A CPU without a
# baseline gets one recorded (printed, and the stage passes). A regression
# is retried once before the stage fails. Last, a self-check shows the gate
# catches a 30% slower result: the comparison against a copy of a baseline
# with every ratio scaled by 1.3 must fail.
#
# Record a baseline on a quiet machine (nothing else running: the ratios of
# a machine shared with other heavy jobs scatter by tens of percent), then
# commit .ci/perf-baselines/<cpu>/*.json.
#
# Environment: BUILD_DIR (default build; reused when scripts/run_tests.sh
# built it), PERF_MAX_REGRESSION (percent, default below), PERF_WORK (scratch
# folder, default a fresh temporary one, removed at exit).
set -euo pipefail
cd "$(dirname "$0")/.."
stage_start=$(date +%s)

BUILD_DIR=${BUILD_DIR:-build}
# A 30% slower run lowers every ratio to 1/1.3 = 0.77 of its baseline
# (-23%). On the shared 2-core machine the best-of-12 ratios of honest runs
# still scattered by up to -16% against the committed minima
# (decode_bandwidth: both the decode and the bandwidth probe move), so the
# gate sits at 20%: below the noise seen, above the slowdown it must catch.
MAX_REGRESSION=${PERF_MAX_REGRESSION:-20}
THREADS=2
BENCH_ARGS=(--bench --threads "$THREADS" --bench-pp 128 --bench-tg 32
            --bench-reps 12)

# This stage's own package: jq edits the scaled baseline of the self-check.
if ! dpkg-query -W -f='${Status}' jq 2>/dev/null | grep -q "install ok installed"; then
  echo "ci_perf: installing jq" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends jq
fi
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  BUILD_DIR=$BUILD_DIR scripts/setup.sh
fi
cmake --build "$BUILD_DIR" -j"$(nproc)" --target llmsynth llmconvert llmquant llmverify
T=$BUILD_DIR/tools

if [ -n "${PERF_WORK:-}" ]; then
  WORK=$PERF_WORK
  mkdir -p "$WORK"
else
  WORK=$(mktemp -d /tmp/llmpack-perf.XXXXXX)
  trap 'rm -rf "$WORK"' EXIT
fi

# The baseline folder of this CPU: its model name and the SIMD extensions the
# kernels and probes choose between, both reduced to [A-Za-z0-9_.-].
cpu_name=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true)
cpu_name=${cpu_name:-$(uname -m)}
# Virtual machines may name every generation alike ("AMD EPYC"): the x86
# family and model numbers tell Zen 4 (family 25) from Zen 5 (26), whose
# ratios differ.
family=$(grep -m1 '^cpu family' /proc/cpuinfo | cut -d: -f2 | tr -d ' ' || true)
model=$(grep -m1 -E '^model[[:space:]]+:' /proc/cpuinfo | cut -d: -f2 | tr -d ' ' || true)
[[ -n $family && -n $model ]] && cpu_name="$cpu_name family $family model $model"
flags=" $(grep -m1 -E '^(flags|Features)' /proc/cpuinfo | cut -d: -f2-) "
isa=""
for f in avx2 fma avx512f avx512_vnni avx512_bf16 amx_tile asimd asimddp sve; do
  [[ $flags == *" $f "* ]] && isa="${isa:+$isa-}$f"
done
cpu_id=$(printf '%s__%s' "$cpu_name" "${isa:-none}" | tr -c 'A-Za-z0-9_.-' '_' | sed 's/__*$//')
BASE_DIR=.ci/perf-baselines/$cpu_id
echo "ci_perf: CPU '$cpu_name' ($isa), baselines in $BASE_DIR, gate -$MAX_REGRESSION%"

# The model: Llama-shaped, hidden 1024, 6 blocks, vocab 32000 (about 0.1 B
# parameters: a few seconds per benchmark repetition).
if [ ! -f "$WORK/int4/manifest.json" ]; then
  "$T/llmsynth" -o "$WORK/hf" --preset llama-3.2-1b --hidden 1024 --layers 6 \
    --heads 16 --kv-heads 4 --head-dim 64 --ffn 4096 --vocab 32000 --tie yes \
    --dtype bf16 --force -q
  "$T/llmconvert" "$WORK/hf" -o "$WORK/bf16" --force -q
  "$T/llmquant" "$WORK/bf16" -o "$WORK/int4" --int4 --method rtn --force -q
fi

# Runs one configuration against its baseline; exit status of llmverify.
compare() {  # name package mode baseline
  "$T/llmverify" "$2" "${BENCH_ARGS[@]}" "--$3" --baseline "$4" \
    --max-regression "$MAX_REGRESSION" --json "$WORK/$1.json"
}

failed=()
recorded=()
for dtype in bf16 int4; do
  for mode in resident stream; do
    name=$dtype-$mode
    base=$BASE_DIR/$name.json
    echo "=== $name"
    if [ ! -f "$base" ]; then
      mkdir -p "$BASE_DIR"
      "$T/llmverify" "$WORK/$dtype" "${BENCH_ARGS[@]}" "--$mode" --json "$base"
      echo "ci_perf: no baseline for this CPU: recorded $base (commit it to gate later runs)"
      recorded+=("$name")
      continue
    fi
    rc=0
    compare "$name" "$WORK/$dtype" "$mode" "$base" || rc=$?
    if [ "$rc" -eq 1 ]; then
      echo "ci_perf: $name regressed; retrying once"
      rc=0
      compare "$name" "$WORK/$dtype" "$mode" "$base" || rc=$?
    fi
    if [ "$rc" -eq 1 ]; then
      failed+=("$name")
    elif [ "$rc" -ne 0 ]; then
      echo "ci_perf: llmverify --bench failed with exit status $rc" >&2
      exit "$rc"
    fi
  done
done

# Self-check: the same comparison against this run's bf16-resident result
# with every ratio scaled by 1.3 must fail (exit status 1), as a build 30%
# slower than this one would. (Scaling this run, not the committed
# baseline, keeps the check meaningful after a speed-up.)
echo "=== self-check: bf16-resident against this run's result with every ratio x1.3"
current=$WORK/bf16-resident.json
[ -f "$current" ] || current=$BASE_DIR/bf16-resident.json
jq '.ratios |= map_values(if . == null then null else .best *= 1.3 end)' \
  "$current" > "$WORK/scaled-baseline.json"
# The rerun is as noisy as any: one faster by 4% on both ratios lands
# within 20% of the x1.3 result (-23%), and honest reruns scatter by more
# (2026-11-30: decode -19.7%, prefill -20.7% in one). So up to four tries,
# and a rerun that stays within the gate raises the scaled baseline to x1.3
# its own ratios where they are higher: the reference is then this build's
# best result so far, not a first run that happened to be slow (on the
# Zen 3 host a first run slower than all three reruns made the check fail,
# 2026-11-30). A gate that does not catch the slowdown misses every try.
raise_scaled_baseline() {  # the rerun's report
  jq -s '.[1].ratios as $r | .[0] | .ratios |= with_entries(
      if .value == null or $r[.key] == null then .
      else .value.best = ([.value.best, $r[.key].best * 1.3] | max) end)' \
    "$WORK/scaled-baseline.json" "$1" > "$WORK/scaled-baseline.next.json"
  mv "$WORK/scaled-baseline.next.json" "$WORK/scaled-baseline.json"
}
rc=0
for try in 1 2 3 4; do
  rc=0
  compare self-check "$WORK/bf16" resident "$WORK/scaled-baseline.json" || rc=$?
  [ "$rc" -ne 0 ] && break
  echo "ci_perf: the self-check's rerun $try stayed within the gate"
  raise_scaled_baseline "$WORK/self-check.json"
done
if [ "$rc" -ne 1 ]; then
  echo "ci_perf: FAIL: the gate did not catch a 30% slower result (exit status $rc, expected 1)" >&2
  exit 1
fi
echo "ci_perf: self-check passed: a 30% slower result fails the gate"

elapsed=$(( $(date +%s) - stage_start ))
if ((${#recorded[@]})); then
  echo "ci_perf: recorded new baselines for ${recorded[*]} on this CPU ($cpu_id)"
fi
if ((${#failed[@]})); then
  echo "ci_perf: FAIL: ratios regressed by more than $MAX_REGRESSION% in ${failed[*]} (after one retry); ${elapsed} s" >&2
  exit 1
fi
echo "ci_perf: PASS (${elapsed} s)"
