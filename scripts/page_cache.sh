#!/usr/bin/env bash
# Page-cache helpers for cold/warm measurements (source this file).
#
#   evict_page_cache FILE_OR_DIR...   drop the files' pages from the page cache
#   cached_bytes FILE_OR_DIR...       bytes of the files now in the page cache
#
# Eviction is posix_fadvise(POSIX_FADV_DONTNEED) over each whole file, which
# is what GNU dd does for `iflag=nocache count=0`. It needs no privileges and
# touches only these files, but the kernel keeps pages that another process
# has mapped or dirty: check with cached_bytes (fincore, util-linux) that the
# eviction took before calling a run cold.

_page_cache_files() {
  local p
  for p in "$@"; do
    if [[ -d $p ]]; then
      find "$p" -maxdepth 1 -type f -print0 | sort -z
    else
      printf '%s\0' "$p"
    fi
  done
}

evict_page_cache() {
  local f
  sync
  while IFS= read -r -d '' f; do
    dd if="$f" iflag=nocache count=0 status=none
  done < <(_page_cache_files "$@")
}

cached_bytes() {
  local f total=0 n
  while IFS= read -r -d '' f; do
    n=$(fincore --bytes --noheadings --output RES "$f" 2>/dev/null || echo 0)
    total=$((total + ${n:-0}))
  done < <(_page_cache_files "$@")
  echo "$total"
}
