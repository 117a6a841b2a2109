#!/usr/bin/env bash
# The seed's scenario at full size (issue 10 item 8; not part of CI): a
# synthetic checkpoint of Llama-3-8B shapes (hidden 4096, 32 layers, 32/8
# heads, ffn 14336, vocab 128256, untied; 16 GB in bf16) is converted,
# quantized to int4 and streamed on a machine with less memory than the
# float model. Reports, for each step, wall time and peak RSS
# (/usr/bin/time -v), the package's file sizes, and streaming decode speed,
# peak RSS and the two-block memory bound, cold and warm; cold speed is
# reported as a ratio to the file-read probe (bytes read per token over the
# read throughput of the same files, measured here after evicting them).
#
# Usage: scripts/bench_8b.sh [WORK_DIR]   (default /tmp/llmpack-bench-8b)
#   BUILD=build  METHOD=rtn|search  THREADS=2  TOKENS=8  NICE=10
# Disk: about 33 GB at the peak (checkpoint and bf16 package together); each
# big intermediate is deleted as soon as the next step has used it, and
# WORK_DIR is removed at the end (KEEP=1 keeps the int4 package).
# Needs: the built tools, GNU time, jq, util-linux (fincore).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
WORK=${1:-/tmp/llmpack-bench-8b}
METHOD=${METHOD:-rtn}  # rtn: minutes; search: better int4, several times slower
THREADS=${THREADS:-2}
TOKENS=${TOKENS:-8}
NICE=${NICE:-10}
. "$ROOT/scripts/page_cache.sh"

tool() {  # tool NAME: its path, checked when it is about to be used
  [[ -x $BUILD/tools/$1 ]] || { echo "missing $BUILD/tools/$1" >&2; exit 1; }
  echo "$BUILD/tools/$1"
}
for cmd in /usr/bin/time jq fincore; do
  command -v "$cmd" >/dev/null || { echo "missing $cmd" >&2; exit 1; }
done

mkdir -p "$WORK"
cleanup() { [[ ${KEEP:-0} == 1 ]] || rm -rf "$WORK"; }
trap cleanup EXIT

mib() { awk -v b="$1" 'BEGIN { printf "%.0f MiB", b / 1048576 }'; }

# step NAME CMD...: runs CMD under nice and GNU time; prints wall and peak RSS.
step() {
  local name=$1
  shift
  local log=$WORK/$name.time
  nice -n "$NICE" /usr/bin/time -v -o "$log" "$@" >"$WORK/$name.out" 2>&1 || {
    cat "$WORK/$name.out" >&2
    return 1
  }
  local wall rss
  wall=$(sed -n 's/.*Elapsed (wall clock) time.*: //p' "$log")
  rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$log")
  printf '%-28s wall %-10s peak RSS %s\n' "$name" "$wall" "$(mib $((rss * 1024)))"
}

echo "== llmpack 8B scenario: $(date -u +%FT%TZ), $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
echo "   CPU: $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
echo "   free disk in $(dirname "$WORK"): $(df -h --output=avail "$WORK" | tail -1)"

step "llmsynth --preset llama-3-8b" "$(tool llmsynth)" --preset llama-3-8b \
  -o "$WORK/ckpt" --force -q
echo "   checkpoint: $(du -sh "$WORK/ckpt" | cut -f1)"
step "llmconvert (bf16)" "$(tool llmconvert)" "$WORK/ckpt" -o "$WORK/bf16" -q
rm -rf "$WORK/ckpt"
echo "   bf16 package: $(du -sh "$WORK/bf16" | cut -f1)"
step "llmquant --int4 --method $METHOD" "$(tool llmquant)" "$WORK/bf16" \
  -o "$WORK/q4" --int4 --method "$METHOD" --threads "$THREADS" -q
rm -rf "$WORK/bf16"

PKG=$WORK/q4
echo "== int4 package files"
blocks=("$PKG"/block_*.bin)
printf '   embedding.bin %s, lm.bin %s, %d blocks of %s (largest), total %s\n' \
  "$(mib "$(stat -c %s "$PKG/embedding.bin")")" \
  "$(mib "$(stat -c %s "$PKG/lm.bin")")" "${#blocks[@]}" \
  "$(mib "$(stat -c %s "${blocks[@]}" | sort -n | tail -1)")" \
  "$(du -sh "$PKG" | cut -f1)"

# File-read probe: the block and lm files, cold, one sequential reader.
evict_page_cache "$PKG"
probe_bytes=$(stat -c %s "${blocks[@]}" | awk '{ s += $1 } END { print s }')
t0=$(date +%s.%N)
cat "${blocks[@]}" >/dev/null
t1=$(date +%s.%N)
read_gbps=$(awk -v b="$probe_bytes" -v a="$t0" -v c="$t1" 'BEGIN { printf "%.3f", b / (c - a) / 1e9 }')
echo "== file-read probe (cold, blocks): $read_gbps GB/s"

# A fixed prompt of ids below the vocabulary size; decode is what we measure.
PROMPT="128000 791 4062 14198 39935 35308 927 279 16053 5679 13 578"
run() {  # run NAME [ARGS]: one streaming run, prints its metrics
  local json=$WORK/$1.json name=$1
  shift
  nice -n "$NICE" "$(tool llmverify)" "$PKG" --stream --threads "$THREADS" \
    --prompt-ids "$PROMPT" -n "$TOKENS" --ignore-eos -q --json "$json" "$@" >/dev/null
  jq -r --arg name "$name" '.metrics as $m | "\($name): decode \($m.decode_tokens_per_second * 1000 | round / 1000) tok/s, prompt \($m.prefill_tokens_per_second * 100 | round / 100) tok/s, peak RSS \($m.peak_rss_bytes / 1048576 | round) MiB, prefetch wait \($m.prefetch_wait_ms | round) ms, at most \($m.max_resident_blocks) blocks resident"' "$json"
}
echo "== streaming decode ($TOKENS tokens, $THREADS threads)"
evict_page_cache "$PKG"
echo "   cached before the cold run: $(mib "$(cached_bytes "$PKG")")"
# Cold: every token reads from disk (--drop-page-cache drops each block file
# from the page cache once read; the int4 package would otherwise stay
# cached after the first pass). Warm: the second run finds it cached.
run cold --drop-page-cache
run warm
block_bytes=$(stat -c %s "${blocks[@]}" | sort -n | tail -1)
jq -r --argjson block "$block_bytes" --argjson gbps "$read_gbps" \
  --argjson blocks "${#blocks[@]}" '
  .metrics as $m
  | ($blocks * $block) as $per_token
  | (2 * $block + $m.lm_bytes + $m.kv_cache_bytes + 64 * 1048576) as $bound
  | "   bytes read per token: \($per_token / 1048576 | round) MiB; "
    + "cold probe bound \($gbps * 1e9 / $per_token * 1000 | round / 1000) tok/s\n"
    + "   peak RSS bound (2 blocks + lm + KV + 64 MiB): \($bound / 1048576 | round) MiB; "
    + "measured \($m.peak_rss_bytes / 1048576 | round) MiB (\(if $m.peak_rss_bytes <= $bound then "within" else "OVER" end))"' \
  "$WORK/warm.json"
jq -r --argjson block "$block_bytes" --argjson gbps "$read_gbps" \
  --argjson blocks "${#blocks[@]}" '
  .metrics.decode_tokens_per_second / ($gbps * 1e9 / ($blocks * $block))
  | "   cold decode / probe bound: \(. * 1000 | round / 1000)"' "$WORK/cold.json"
