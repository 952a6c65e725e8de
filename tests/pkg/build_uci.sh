#!/bin/sh
# Builds OpenWrt's `uci` command for this machine, to test the OpenWrt package off the router:
#
#   tests/pkg/build_uci.sh [DIR]      (default target/pkg-tools; the command is DIR/bin/uci)
#
# The sources are those of libuci and libubox that the crates.io crate libuci-sys bundles;
# cargo fetches the crate into its registry cache (nothing of it enters this repository),
# and the few C files the command needs are compiled with cc.
set -eu
cd "$(dirname "$0")/../.."

dir=$(mkdir -p "${1:-target/pkg-tools}" && cd "${1:-target/pkg-tools}" && pwd)
if [ -x "$dir/bin/uci" ]; then
    echo "$dir/bin/uci"
    exit 0
fi
version=1.0.5

# A throwaway package whose one dependency is libuci-sys: `cargo fetch` puts its source in
# the registry cache, and `cargo metadata` says where.
work=$dir/fetch
mkdir -p "$work/src"
cat >"$work/Cargo.toml" <<TOML
[package]
name = "fetch-libuci-sys"
version = "0.0.0"
edition = "2021"
[dependencies]
libuci-sys = "=$version"
[workspace]
TOML
echo 'fn main() {}' >"$work/src/main.rs"
cargo fetch -q --manifest-path "$work/Cargo.toml"
manifest=$(cargo metadata -q --format-version 1 --manifest-path "$work/Cargo.toml" |
    python3 -c 'import json, sys
for p in json.load(sys.stdin)["packages"]:
    if p["name"] == "libuci-sys":
        print(p["manifest_path"])')
src=$(dirname "$manifest")

# uci's CMake build would write uci_config.h from uci_config.h.in: no debug options.
build=$dir/build
rm -rf "$build"
mkdir -p "$build/include" "$dir/bin"
cp -R "$src/uci" "$src/libubox" "$build/"
: >"$build/uci/uci_config.h"
ln -s "$build/libubox" "$build/include/libubox"
(
    cd "$build"
    ${CC:-cc} -Os -std=gnu99 -w -I include -I uci -DUCI_PREFIX='"/usr"' -o "$dir/bin/uci" \
        uci/cli.c uci/libuci.c uci/file.c uci/util.c uci/delta.c uci/parse.c uci/blob.c \
        libubox/blob.c libubox/blobmsg.c libubox/avl.c libubox/avl-cmp.c libubox/utils.c
)
echo "$dir/bin/uci"
