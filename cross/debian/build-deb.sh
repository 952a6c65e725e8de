#!/bin/sh
# Debian/Ubuntu packages of mlvpn for servers, with dpkg-deb (no debhelper needed):
#
#   cross/debian/build-deb.sh [ARCH...]     (default: amd64 arm64)
#
# Each holds the static binary of cross/build.sh (built first if missing), so it depends on
# nothing and installs on any Debian or Ubuntu release with systemd. Written to
# target/debian/mlvpn_<version>-<revision>_<arch>.deb; the version is Cargo.toml's, the
# revision $DEB_REVISION (default 1).
#
# Contents: /usr/sbin/mlvpn; the templated unit mlvpn@.service (mlvpn@NAME runs
# /etc/mlvpn/NAME.conf); /etc/mlvpn (mode 700); the commented server and client configs and
# a hook script in /usr/share/doc/mlvpn/examples/.
set -eu
cd "$(dirname "$0")/../.."

die() {
    echo "cross/debian/build-deb.sh: $*" >&2
    exit 1
}

rust_target() {
    case "$1" in
    amd64) echo x86_64-unknown-linux-musl ;;
    arm64) echo aarch64-unknown-linux-musl ;;
    armhf) echo armv7-unknown-linux-musleabihf ;;
    *) return 1 ;;
    esac
}

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)-${DEB_REVISION:-1}
maintainer=${DEB_MAINTAINER:-mlvpn packagers <packagers@mlvpn.invalid>}
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
export SOURCE_DATE_EPOCH="$epoch"
out=target/debian
mkdir -p "$out"
src=cross/debian

# shellcheck disable=SC2086 # a list of words
[ $# -gt 0 ] || set -- amd64 arm64
for arch in "$@"; do
    target=$(rust_target "$arch") || die "unknown architecture $arch (known: amd64 arm64 armhf)"
    binary=target/cross/$target/mlvpn
    [ -f "$binary" ] || cross/build.sh "$target"

    root=$(mktemp -d)
    chmod 755 "$root"
    install -d -m 755 "$root/DEBIAN" "$root/usr/sbin" "$root/usr/lib/systemd/system" \
        "$root/usr/share/doc/mlvpn/examples"
    install -d -m 700 "$root/etc/mlvpn"
    install -m 755 "$binary" "$root/usr/sbin/mlvpn"
    install -m 644 "$src/mlvpn@.service" "$root/usr/lib/systemd/system/mlvpn@.service"
    install -m 644 src/config/samples/server.conf "$root/usr/share/doc/mlvpn/examples/server.conf"
    install -m 644 src/config/samples/client.conf "$root/usr/share/doc/mlvpn/examples/client.conf"
    install -m 755 "$src/mlvpn_updown.sh" "$root/usr/share/doc/mlvpn/examples/mlvpn_updown.sh"
    install -m 644 README.md "$root/usr/share/doc/mlvpn/README.md"
    {
        echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
        echo "Upstream-Name: mlvpn"
        echo
        echo "Files: *"
        echo "License: BSD-2-Clause"
        sed 's/^$/./; s/^/ /' LICENSE
    } >"$root/usr/share/doc/mlvpn/copyright"
    chmod 644 "$root/usr/share/doc/mlvpn/copyright"
    for script in postinst prerm postrm; do
        install -m 755 "$src/$script" "$root/DEBIAN/$script"
    done
    installed_kib=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
    cat >"$root/DEBIAN/control" <<CONTROL
Package: mlvpn
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $installed_kib
Recommends: iproute2
Section: net
Priority: optional
Description: multi-link VPN: bonds several WAN links into one encrypted tunnel
 mlvpn bonds several internet links (DSL, fibre, 4G/5G, satellite...) into one
 encrypted tunnel between a router and an aggregation server, adding up their
 bandwidth and keeping TCP connections alive when a link fails. A new
 implementation of MLVPN that keeps its configuration file, command line and
 hook script.
 .
 This package is for the server end (and Linux clients): one systemd instance
 mlvpn@NAME per configuration file /etc/mlvpn/NAME.conf.
CONTROL
    deb=$out/mlvpn_${version}_$arch.deb
    dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
    rm -rf "$root"
    echo "$deb ($(wc -c <"$deb") bytes)"
done
