#!/usr/bin/env bash
# CI stage: cross-builds the runtime kernels and their tests for aarch64 with
# Debian's cross compiler and runs them under qemu-user (no binfmt needed: the
# toolchain file makes ctest launch each test through qemu-aarch64-static).
# Idempotent; run as root on Debian 12. docs/runtime.md, "ARM (aarch64)".
set -euo pipefail
cd "$(dirname "$0")/.."

HOST_PACKAGES=(cmake ninja-build pkg-config nlohmann-json3-dev
  g++-aarch64-linux-gnu qemu-user-static)
# The arm64 libraries the kernel targets link (multiarch, Debian's mirrors).
ARM64_PACKAGES=(libabsl-dev:arm64 libxxhash-dev:arm64 libhwy-dev:arm64
  libgtest-dev:arm64 libgmock-dev:arm64)

SECONDS=0
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  echo "ci_aarch64: dpkg --add-architecture arm64" >&2
  dpkg --add-architecture arm64  # the :arm64 packages are then missing
fi
scripts/apt_install.sh "${HOST_PACKAGES[@]}" "${ARM64_PACKAGES[@]}"
echo "ci_aarch64: packages ready after ${SECONDS}s" >&2

BUILD_DIR=${BUILD_DIR:-build-aarch64}
launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
  -DLLMPACK_KERNELS_ONLY=ON "${launcher[@]}"
cmake --build "$BUILD_DIR" -j"$(nproc)"
echo "ci_aarch64: built after ${SECONDS}s" >&2
# Runs the tests matching $3 with qemu emulating CPU $1 and checks that
# Highway's dispatch chose target $2 there. Only "max" has SVE2 (512-bit by
# default); the other CPUs make NEON, SVE2_128 and SVE_256 the best target,
# so every aarch64 target meets the scalar reference.
run_tests() {
  local cpu=$1 want=$2 regex=$3 seen
  seen=$(QEMU_CPU=$cpu ctest --test-dir "$BUILD_DIR" -V \
    -R '^KernelsTest\.OptimizedIsNotScalar$' |
    grep -o 'optimized kernels: .*' || true) 
  echo "ci_aarch64: QEMU_CPU=$cpu: $seen" >&2
  if [[ $seen != "optimized kernels: highway:$want" ]]; then
    echo "ci_aarch64: expected highway:$want on QEMU_CPU=$cpu" >&2
    return 1
  fi
  QEMU_CPU=$cpu ctest --test-dir "$BUILD_DIR" --output-on-failure \
    -j"$(nproc)" -R "$regex"
}
KERNEL_TESTS='KernelsTest\.|MatMulTest\.|QuantizeActivationsTest\.'
run_tests max SVE2 .
run_tests cortex-a72 NEON "$KERNEL_TESTS"
run_tests max,sve-default-vector-length=16 SVE2_128 "$KERNEL_TESTS"
run_tests max,sve-default-vector-length=32 SVE_256 "$KERNEL_TESTS"
echo "ci_aarch64: done after ${SECONDS}s" >&2
