#!/bin/sh
# OpenWrt 24.10 packages (.ipk) of mlvpn, made without the OpenWrt SDK:
#
#   openwrt/build-ipk.sh [ARCH...]
#
# ARCH is an OpenWrt package architecture (default: all of those below). Each package holds
# the static binary of cross/build.sh (built first if missing) and the files of
# openwrt/mlvpn/files, in the places openwrt/mlvpn/Makefile installs them. Written to
# target/openwrt/mlvpn_<version>_<arch>.ipk; the version is PKG_VERSION-rPKG_RELEASE of that
# Makefile. For OpenWrt 25.12, whose packages are .apk, build the Makefile with the SDK
# (openwrt/README.md).
#
# An ipk, as OpenWrt's ipkg-build makes it, is a gzip'd tar (not an ar archive like a .deb)
# of ./debian-binary, ./data.tar.gz and ./control.tar.gz; files belong to root, and
# timestamps are SOURCE_DATE_EPOCH (default: the last commit's), so the output is
# reproducible.
set -eu
cd "$(dirname "$0")/.."

ALL_ARCHES="mips_24kc mipsel_24kc arm_cortex-a7_neon-vfpv4 aarch64_cortex-a53 x86_64"

# The Rust target whose binary runs on an OpenWrt package architecture.
rust_target() {
    case "$1" in
    mips_24kc) echo mips-unknown-linux-musl ;;
    mipsel_24kc) echo mipsel-unknown-linux-musl ;;
    arm_cortex-a7_neon-vfpv4) echo armv7-unknown-linux-musleabihf ;;
    aarch64_cortex-a53 | aarch64_generic) echo aarch64-unknown-linux-musl ;;
    x86_64) echo x86_64-unknown-linux-musl ;;
    *) return 1 ;;
    esac
}

die() {
    echo "openwrt/build-ipk.sh: $*" >&2
    exit 1
}

makefile=openwrt/mlvpn/Makefile
files=openwrt/mlvpn/files
make_var() {
    sed -n "s/^$1:=//p" "$makefile"
}
version=$(make_var PKG_VERSION)-r$(make_var PKG_RELEASE)
license=$(make_var PKG_LICENSE)
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
out=target/openwrt
mkdir -p "$out"

# tar of DIR's contents as OpenWrt makes them: root-owned, sorted, fixed times, gzip -n.
pack() {
    (cd "$1" && shift && tar --format=gnu --numeric-owner --owner=0 --group=0 --sort=name \
        --mtime="@$epoch" -cf - "$@" | gzip -9n)
}

# shellcheck disable=SC2086 # a list of words
[ $# -gt 0 ] || set -- $ALL_ARCHES
for arch in "$@"; do
    target=$(rust_target "$arch") || die "unknown architecture $arch (known: $ALL_ARCHES)"
    binary=target/cross/$target/mlvpn
    [ -f "$binary" ] || cross/build.sh "$target"

    work=$(mktemp -d)
    # data: as Package/mlvpn/install in the Makefile.
    d=$work/data
    install -d -m 755 "$d/usr/sbin" "$d/usr/libexec/mlvpn" "$d/etc/init.d" "$d/etc/config" \
        "$d/etc/hotplug.d/iface"
    install -m 755 "$binary" "$d/usr/sbin/mlvpn"
    install -m 755 "$files/mlvpn.render" "$d/usr/libexec/mlvpn/render"
    install -m 755 "$files/mlvpn.init" "$d/etc/init.d/mlvpn"
    install -m 600 "$files/mlvpn.config" "$d/etc/config/mlvpn"
    install -m 644 "$files/mlvpn.hotplug" "$d/etc/hotplug.d/iface/95-mlvpn"

    # control: the fields OpenWrt writes, the conffile, and OpenWrt's standard scripts.
    c=$work/control
    mkdir -p "$c"
    installed_size=$(find "$d" -type f -exec cat {} + | wc -c)
    cat >"$c/control" <<CONTROL
Package: mlvpn
Version: $version
Depends: kmod-tun
Source: feeds/mlvpn/mlvpn
SourceName: mlvpn
License: $license
LicenseFiles: LICENSE
Section: net
SourceDateEpoch: $epoch
Architecture: $arch
Installed-Size: $installed_size
Description:  mlvpn bonds several internet links (DSL, fibre, 4G/5G...) into one encrypted
 tunnel to an aggregation server, adding up their bandwidth and keeping TCP connections
 alive when a link fails. Configured in /etc/config/mlvpn: one 'link' section per WAN.
CONTROL
    echo /etc/config/mlvpn >"$c/conffiles"
    install -m 755 openwrt/ipk/postinst "$c/postinst"
    install -m 755 openwrt/ipk/prerm "$c/prerm"

    p=$work/pkg
    mkdir -p "$p"
    echo 2.0 >"$p/debian-binary"
    pack "$d" . >"$p/data.tar.gz"
    pack "$c" . >"$p/control.tar.gz"
    ipk=$out/mlvpn_${version}_$arch.ipk
    pack "$p" ./debian-binary ./data.tar.gz ./control.tar.gz >"$ipk"
    rm -rf "$work"
    echo "$ipk ($(wc -c <"$ipk") bytes)"
done
