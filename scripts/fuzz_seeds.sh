#!/usr/bin/env bash
# Collects the fuzzers' seed corpora into OUT_DIR/<target>/ (target = the
# fuzzer's name without _fuzz): small inputs written by fuzz_make_seeds (our
# own), the bundled testdata, and the reference fixtures when
# ../shared/fixtures is there (third-party data: used at run time, never
# committed). Inputs above 2 MB are left out: libFuzzer mutates whole inputs.
# Usage: scripts/fuzz_seeds.sh BUILD_DIR OUT_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
build=$1
out=$2
fixtures=${LLMPACK_SHARED_DIR:-../shared}/fixtures
testdata=testdata/trained-llama

rm -rf "$out"
mkdir -p "$out"
configs=("$testdata"/hf/tokenizer_config.json)
if [ -d "$fixtures" ]; then
  configs+=("$fixtures"/*/hf/tokenizer_config.json "$fixtures"/tokenizers/*_tokenizer_config.json)
else
  echo "fuzz_seeds: $fixtures not found: seeds from testdata and our own only" >&2
fi
"$build"/tests/fuzz/fuzz_make_seeds "$out" "$testdata"/hf "${configs[@]}"

# seed TARGET FILE...: copies the files that exist and are at most 2 MB.
seed() {
  local target=$1
  shift
  mkdir -p "$out/$target"
  local f
  for f in "$@"; do
    [ -f "$f" ] || continue
    if [ "$(stat -c %s "$f")" -le $((2 * 1024 * 1024)) ]; then
      cp "$f" "$out/$target/$(echo "$f" | tr / _)"
    fi
  done
}

for root in "$testdata" "$fixtures"/*; do
  seed hf_config "$root"/hf/config.json "$root"/hf/generation_config.json
  seed safetensors "$root"/hf/*.safetensors
  seed safetensors_index "$root"/hf/model.safetensors.index.json
  seed tokenizer_json "$root"/hf/tokenizer.json
  seed chat_template "$root"/hf/chat_template.jinja
  seed reference "$root"/reference.json
  seed eval "$root"/eval_windows.json "$root"/eval_tokens.json
  seed npy "$root"/ref_logits_0.npy
  seed onnx "$root"/*.onnx
done
seed tokenizer_json "$fixtures"/tokenizers/*_tokenizer.json
seed sentencepiece "$fixtures"/tokenizers/*.model
echo "fuzz_seeds: $(find "$out" -type f | wc -l) seeds in $out" >&2
