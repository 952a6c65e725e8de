#!/bin/sh
# Installs what cross/build.sh, cross/test.sh and the packaging scripts need, where missing:
#   - the nightly toolchain with rust-src (to rebuild std) and llvm-tools (llvm-strip);
#   - zig and cargo-zigbuild, from PyPI, as the linker with musl for every target;
#   - qemu-user-static (runs the MIPS and ARM binaries), shellcheck, busybox (OpenWrt's shell,
#     for tests/pkg/openwrt_test.sh), xz, dpkg-deb, readelf, from Debian.
# Run as root on Debian or Ubuntu. Idempotent: what is there is left alone (an installed
# nightly is not updated: set MLVPN_CROSS_TOOLCHAIN to pin another one).
set -eu

TOOLCHAIN=${MLVPN_CROSS_TOOLCHAIN:-nightly}
# Versions known to work together here; newer ones usually do too.
ZIG_VERSION=0.17.1
ZIGBUILD_VERSION=0.24.1

if ! rustc +"$TOOLCHAIN" --version >/dev/null 2>&1; then
    rustup toolchain install "$TOOLCHAIN" --profile minimal --component rust-src,llvm-tools
else
    rustup +"$TOOLCHAIN" component add rust-src llvm-tools
fi

if ! command -v cargo-zigbuild >/dev/null || ! python3 -m ziglang version >/dev/null 2>&1; then
    python3 -m pip install -q "ziglang==$ZIG_VERSION" "cargo-zigbuild==$ZIGBUILD_VERSION"
    # pyenv puts new console scripts on PATH only after a rehash.
    if command -v pyenv >/dev/null; then pyenv rehash; fi
fi

missing=
command -v qemu-mips-static >/dev/null || missing="$missing qemu-user-static"
command -v shellcheck >/dev/null || missing="$missing shellcheck"
command -v busybox >/dev/null || missing="$missing busybox"
command -v readelf >/dev/null || missing="$missing binutils"
command -v xz >/dev/null || missing="$missing xz-utils"
command -v dpkg-deb >/dev/null || missing="$missing dpkg"
if [ -n "$missing" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # shellcheck disable=SC2086 # a list of package names
    apt-get install -y -q --no-install-recommends $missing
fi

rustc +"$TOOLCHAIN" --version
cargo-zigbuild --version
echo "zig $(python3 -m ziglang version)"
