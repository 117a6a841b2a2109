#!/usr/bin/env bash
# Installs every Debian package the build and tests need, then configures the
# build in ./build. Idempotent; run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake ninja-build pkg-config time
  libabsl-dev libprotobuf-dev protobuf-compiler libonnx-dev
  libzstd-dev libxxhash-dev libutf8proc-dev libpcre2-dev libhwy-dev
  libcli11-dev nlohmann-json3-dev libgtest-dev libgmock-dev libbenchmark-dev
)

scripts/apt_install.sh "${PACKAGES[@]}"

BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo}
