#!/usr/bin/env bash
# Installs what is missing (scripts/setup.sh) and builds everything in
# $BUILD_DIR (default ./build). Used by the main job and the test run.
set -euo pipefail
cd "$(dirname "$0")/.."
export BUILD_DIR=${BUILD_DIR:-build}
scripts/setup.sh
cmake --build "$BUILD_DIR" -j"$(nproc)"
