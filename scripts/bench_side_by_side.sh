#!/usr/bin/env bash
# Issue 10's target table in one sitting (not part of CI): llama.cpp
# (../shared/peers/llamacpp_bench.sh) and llmpack on the same 1.24B
# Llama-3.2-1B-shaped model, each of our runs right after the peer's, on a
# machine whose speed drifts by the minute, so only ratios from one sitting
# mean anything. Prints the peer's JSON line and our bench tables, and
# writes our --bench --json reports to OUT_DIR.
#
# Usage: scripts/bench_side_by_side.sh [WORK_DIR]   (default /tmp/llmpack-side)
#   BUILD=build  PEERS_DIR=/tmp/llmpack-peers  REPS=2  OUT_DIR=WORK_DIR/results
# WORK_DIR keeps the generated packages (bf16 2.3 GB, int4 0.7 GB) for the
# next sitting. Needs: the built tools and ../shared/peers.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
WORK=${1:-/tmp/llmpack-side}
PEERS=${PEERS:-$ROOT/../shared/peers}
export PEERS_DIR=${PEERS_DIR:-/tmp/llmpack-peers}
REPS=${REPS:-2}
OUT=${OUT_DIR:-$WORK/results}
T=$BUILD/tools
for t in llmsynth llmconvert llmquant llmverify; do
  [[ -x $T/$t ]] || { echo "missing $T/$t (build first)" >&2; exit 1; }
done
[[ -f $PEERS/llamacpp_bench.sh ]] || {
  echo "no $PEERS/llamacpp_bench.sh: the peer runs need ../shared/peers" >&2
  exit 1
}
mkdir -p "$WORK" "$OUT"

# The packages: llmsynth defaults (the issue's shapes), bf16, int4 group 32.
if [[ ! -f $WORK/int4/manifest.json ]]; then
  "$T/llmsynth" -o "$WORK/hf" --force -q
  "$T/llmconvert" "$WORK/hf" -o "$WORK/bf16" --force -q
  rm -rf "$WORK/hf"
  "$T/llmquant" "$WORK/bf16" -o "$WORK/int4" --int4 --method rtn --force -q
fi

stamp() { echo "== $(date -u +%H:%M:%S) $*"; }
peer() { bash "$PEERS/llamacpp_bench.sh" "$1" 2 512 128 "$REPS" 2>&1 | tail -1; }
ours() {  # ours NAME PACKAGE ARGS...
  local name=$1 pkg=$2
  shift 2
  "$T/llmverify" "$pkg" --bench --threads 2 --bench-reps "$REPS" \
    --json "$OUT/$name.json" "$@" | grep -E '^\| llama|^memory'
}
stamp "llama.cpp Q4_0"; peer Q4_0
stamp "int4 resident"; ours int4-resident "$WORK/int4" --resident
stamp "int4 stream, warm"; ours int4-stream "$WORK/int4" --stream
stamp "llama.cpp F16"; peer F16
stamp "bf16 resident"; ours bf16-resident "$WORK/bf16" --resident
# bf16 decode is slow: streaming against resident on 32 tokens, no prompt.
stamp "bf16 stream tg32"
ours bf16-stream-tg32 "$WORK/bf16" --stream --bench-pp 0 --bench-tg 32
stamp "bf16 resident tg32"
ours bf16-resident-tg32 "$WORK/bf16" --resident --bench-pp 0 --bench-tg 32
stamp "int4 stream, cold, tg8"
ours int4-stream-cold "$WORK/int4" --stream --cold --bench-pp 0 --bench-tg 8
stamp "done; reports in $OUT"
