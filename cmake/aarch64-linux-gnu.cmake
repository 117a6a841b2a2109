# Cross build for 64-bit Arm Linux with Debian's cross compiler
# (g++-aarch64-linux-gnu) against the arm64 multiarch -dev packages in
# /usr/lib/aarch64-linux-gnu. scripts/ci_aarch64.sh uses it with
# -DLLMPACK_KERNELS_ONLY=ON; docs/runtime.md, "ARM (aarch64)".
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

# pkg-config must see only the arm64 .pc files (else it finds the host's
# libxxhash and the link picks the x86-64 library).
set(ENV{PKG_CONFIG_LIBDIR}
    /usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig)

# ctest (and test discovery) run the binaries through qemu-user, so no binfmt
# registration is needed. No -L /usr/aarch64-linux-gnu: the binaries load
# multiarch arm64 libraries (libabsl, libhwy), which bring libc6:arm64, and
# the loader must come from that same glibc build. With -L, the cross
# sysroot's ld.so (2.36-8cross1) ran libc6:arm64's libc.so.6 (2.36-9+deb12u*)
# and the first std::thread hung.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64-static)
