#!/bin/sh
# Runs the tests that prove the code right on another architecture, under qemu-user:
#
#   cross/test.sh [TARGET]        (default mips-unknown-linux-musl: 32-bit big-endian)
#
# The unit tests, the simulator, the config golden files, libsodium's vectors, the check that
# the data path allocates nothing, and the TUN tests against the kernel (those need root, and
# skip loudly without it; TUN ioctls work under qemu-user). Left out: the end-to-end tests,
# which start host binaries (tests/pkg/mips_e2e.sh runs a MIPS client against an x86_64
# server instead).
#
# Built like cross/build.sh (nightly, -Z build-std, zig's musl), in the test profile;
# cargo runs each test binary through qemu-<arch>-static. cross/setup.sh installs all this.
set -eu
cd "$(dirname "$0")/.."

target=${1:-mips-unknown-linux-musl}
TOOLCHAIN=${MLVPN_CROSS_TOOLCHAIN:-nightly}

case "$target" in
mips-*) qemu="qemu-mips-static" ;;
mipsel-*) qemu="qemu-mipsel-static" ;;
arm-* | armv7-*) qemu="qemu-arm-static" ;;
aarch64-*) qemu="qemu-aarch64-static" ;;
x86_64-*) qemu= ;;
*)
    echo "cross/test.sh: no qemu known for $target" >&2
    exit 1
    ;;
esac
if [ -n "$qemu" ] && ! command -v "$qemu" >/dev/null; then
    echo "cross/test.sh: $qemu not found: run cross/setup.sh" >&2
    exit 1
fi

# CARGO_TARGET_<TRIPLE>_RUNNER: cargo runs every test binary of that target through it.
runner_var=CARGO_TARGET_$(echo "$target" | tr 'a-z-' 'A-Z_')_RUNNER
if [ -n "$qemu" ]; then
    export "$runner_var=$qemu"
fi

echo "== tests on $target${qemu:+ under $qemu}"
RUSTUP_TOOLCHAIN=$TOOLCHAIN \
    RUSTFLAGS="-C target-feature=+crt-static -C link-self-contained=no" \
    CARGO_TARGET_DIR=target/cross-build/test \
    cargo-zigbuild test --locked --target "$target" -Z build-std \
    --lib --test sim --test config_golden --test secretbox_vectors --test no_alloc --test sys_tun
