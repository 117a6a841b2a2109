#!/usr/bin/env bash
# Sets everything up on a fresh Debian 12 machine (as root), builds, and runs
# the main job on the bundled trained-llama checkpoint (testdata/): convert it
# to a package, verify it against the Hugging Face reference outputs (logits,
# greedy continuations, perplexity) and generate from a text prompt.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
BUILD_DIR=$BUILD_DIR scripts/build.sh

MODEL=testdata/trained-llama
OUT=${OUT:-out}
mkdir -p "$OUT"
echo "== llmconvert $MODEL/hf -> $OUT/trained-llama"
"$BUILD_DIR/tools/llmconvert" "$MODEL/hf" -o "$OUT/trained-llama" --force

echo "== llmverify: parity with the Hugging Face reference"
"$BUILD_DIR/tools/llmverify" "$OUT/trained-llama" \
    --reference "$MODEL/reference.json" --json "$OUT/verify_reference.json"
echo "== llmverify: perplexity on the held-out windows"
"$BUILD_DIR/tools/llmverify" "$OUT/trained-llama" \
    --eval "$MODEL/eval_windows.json" --json "$OUT/verify_eval.json"
echo "== llmverify: generation from a text prompt"
"$BUILD_DIR/tools/llmverify" "$OUT/trained-llama" --prompt "ROMEO:" -n 40
echo "== done: package in $OUT/trained-llama, reports in $OUT/verify_*.json"
