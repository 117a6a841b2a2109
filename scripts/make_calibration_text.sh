#!/usr/bin/env bash
# Writes calibration text for llmquant --calib from the TRAINING part of the
# corpus: the first 95% of each ../shared/corpus/*.txt file (the last 5% is
# held-out evaluation text and is never read). 48 line-aligned pieces of
# ~4 KB are taken at evenly spaced offsets of each file.
#
# usage: scripts/make_calibration_text.sh OUT.txt [CORPUS_DIR]
set -euo pipefail
out=${1:?usage: $0 OUT.txt [CORPUS_DIR]}
corpus=${2:-"$(dirname "$0")/../../shared/corpus"}
pieces=48
piece_bytes=4096
: > "$out"
for f in "$corpus"/shakespeare.txt "$corpus"/fortunes_en.txt "$corpus"/fortunes_zh.txt; do
  size=$(stat -c %s "$f")
  limit=$((size * 95 / 100))  # training text ends here
  for ((i = 0; i < pieces; i++)); do
    start=$((i * (limit - piece_bytes - 512) / pieces))
    # Bytes [start, start + piece_bytes + 512) all lie before the limit;
    # dropping the first and last (partial) lines keeps whole UTF-8 lines.
    dd if="$f" iflag=skip_bytes,count_bytes skip="$start" \
      count=$((piece_bytes + 512)) status=none | sed '1d;$d' >> "$out"
  done
done
echo "wrote $out ($(stat -c %s "$out") bytes of training text)"
