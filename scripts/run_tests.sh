#!/usr/bin/env bash
# Sets everything up on a fresh Debian 12 machine (as root), builds, and runs
# the whole test suite with CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
BUILD_DIR=$BUILD_DIR scripts/build.sh
if [ ! -d ../shared/fixtures ]; then
  echo "WARNING: ../shared/fixtures not found: fixture-based tests will be SKIPPED" >&2
fi
ctest --test-dir "$BUILD_DIR" --output-on-failure -j"$(nproc)"
