#!/usr/bin/env bash
# Sets everything up on a fresh Debian 12 machine (as root), builds, and runs
# the main job on the bundled trained-llama checkpoint (testdata/): convert it
# to a package, then (where the tools exist) verify it against the reference
# outputs, and print a short report.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
BUILD_DIR=$BUILD_DIR scripts/build.sh

MODEL=testdata/trained-llama
OUT=${OUT:-out}
mkdir -p "$OUT"
echo "== llmconvert $MODEL/hf -> $OUT/trained-llama"
"$BUILD_DIR/tools/llmconvert" "$MODEL/hf" -o "$OUT/trained-llama" --force

if [ -x "$BUILD_DIR/tools/llmverify" ]; then
  echo "== llmverify: parity with the Hugging Face reference"
  "$BUILD_DIR/tools/llmverify" "$OUT/trained-llama" \
      --reference "$MODEL/reference.json" --json "$OUT/verify_reference.json"
  echo "== llmverify: perplexity on the held-out windows"
  "$BUILD_DIR/tools/llmverify" "$OUT/trained-llama" \
      --eval "$MODEL/eval_windows.json" --json "$OUT/verify_eval.json"
fi
echo "== done: package in $OUT/trained-llama"
