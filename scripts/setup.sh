#!/usr/bin/env bash
# Installs every Debian package the build and tests need, then configures the
# build in ./build. Idempotent; run as root on Debian 12.
# `setup.sh --packages-only [extra packages...]` installs the packages (and
# the extra ones a CI stage needs, e.g. clang-14) without configuring.
set -euo pipefail
cd "$(dirname "$0")/.."

configure=1
extra=()
if [ "${1:-}" = --packages-only ]; then
  configure=0
  extra=("${@:2}")
fi

PACKAGES=(
  build-essential cmake ninja-build pkg-config time
  libabsl-dev libprotobuf-dev protobuf-compiler libonnx-dev
  libzstd-dev libxxhash-dev libutf8proc-dev libpcre2-dev libhwy-dev
  libcli11-dev nlohmann-json3-dev libgtest-dev libgmock-dev libbenchmark-dev
  "${extra[@]}"
)

scripts/apt_install.sh "${PACKAGES[@]}"

((configure)) || exit 0
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo}
