#!/usr/bin/env bash
# Sets everything up on a fresh Debian 12 machine (as root), builds, and runs
# the main job on the bundled trained-llama checkpoint (testdata/): convert it
# to a package, verify it against the Hugging Face reference outputs (logits,
# greedy continuations, perplexity), generate from a text prompt, then
# quantize it to int4 and measure what that cost against the float package.
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
echo "== llmquant: int4, group 32, asymmetric, f16 scales (4.625 bits/weight)"
"$BUILD_DIR/tools/llmquant" "$OUT/trained-llama" -o "$OUT/trained-llama-q4" \
    --int4 --force --json "$OUT/quant_report.json"
echo "== llmverify --against: KL divergence, top-1 agreement, perplexity ratio"
"$BUILD_DIR/tools/llmverify" "$OUT/trained-llama" \
    --against "$OUT/trained-llama-q4" --eval "$MODEL/eval_windows.json" \
    --max-kl 0.02 --min-top1 0.85 --json "$OUT/verify_against.json"
echo "== done: packages in $OUT/trained-llama{,-q4}, reports in $OUT/*.json"
