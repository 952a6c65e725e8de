#!/bin/sh
# Unpacks each OpenWrt package that openwrt/build-ipk.sh makes and checks it as opkg would
# see it:
#
#   tests/pkg/ipk_test.sh         (builds the packages first if target/openwrt has none)
#
# * the outer file is a gzip'd tar of exactly debian-binary (2.0), control.tar.gz and
#   data.tar.gz, all root's;
# * control has Package, Version (that of the Makefile, matching Cargo.toml's), Architecture
#   (that of the file name), Depends on kmod-tun; conffiles names /etc/config/mlvpn;
#   postinst and prerm call OpenWrt's default_postinst and default_prerm;
# * data holds exactly the files openwrt/mlvpn/Makefile installs, with its modes, equal to
#   the sources in openwrt/mlvpn/files; the binary is static, for the right machine and byte
#   order, and prints its version (under qemu-user for the foreign ones).
set -eu
cd "$(dirname "$0")/../.."
# shellcheck disable=SC1091 # checked on its own
. tests/pkg/lib.sh

ARCHES="mips_24kc mipsel_24kc arm_cortex-a7_neon-vfpv4 aarch64_cortex-a53 x86_64"
makefile=openwrt/mlvpn/Makefile
version=$(sed -n 's/^PKG_VERSION:=//p' $makefile)-r$(sed -n 's/^PKG_RELEASE:=//p' $makefile)
cargo_version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
check_eq "the Makefile's PKG_VERSION is Cargo.toml's version" "$cargo_version-r1" \
    "$cargo_version-r$(sed -n 's/^PKG_RELEASE:=//p' $makefile)"
check_eq "the Makefile's version" "$cargo_version" "$(sed -n 's/^PKG_VERSION:=//p' $makefile)"

missing=
for arch in $ARCHES; do
    [ -f "target/openwrt/mlvpn_${version}_$arch.ipk" ] || missing="$missing $arch"
done
# shellcheck disable=SC2086 # a list of words
[ -z "$missing" ] || openwrt/build-ipk.sh $missing

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# What the Makefile's Package/mlvpn/install puts where, as "MODE PATH" lines, sorted:
# INSTALL_BIN is 755, INSTALL_DATA 644, INSTALL_CONF 600.
# shellcheck disable=SC2016 # $(...) is make's, matched literally
sed -n 's/^\t$(INSTALL_\(BIN\|DATA\|CONF\)) [^ ]* $(1)\(\/.*\)$/\1 .\2/p' $makefile |
    sed -e 's/^BIN/755/' -e 's/^DATA/644/' -e 's/^CONF/600/' |
    sed 's#/$#/mlvpn#' | sort -k2 >"$tmp/expected-files"

elf_header_has() { readelf -h "$1" | grep -q "$2"; }
elf_has_interpreter() { readelf -l "$1" | grep -q INTERP; }
elf_has_symbols() { readelf -S "$1" | grep -q '\.symtab\|\.pdr'; }

for arch in $ARCHES; do
    echo "== $arch"
    ipk=target/openwrt/mlvpn_${version}_$arch.ipk
    x=$tmp/$arch
    mkdir -p "$x/outer" "$x/control" "$x/data"

    check "$arch: the package is a gzip'd tar" gzip -t "$ipk"
    tar -tvzf "$ipk" >"$x/outer.list"
    check_eq "$arch: it holds debian-binary, data.tar.gz and control.tar.gz" \
        "./control.tar.gz ./data.tar.gz ./debian-binary" \
        "$(awk '{print $6}' "$x/outer.list" | sort | tr '\n' ' ' | sed 's/ $//')"
    check_eq "$arch: all of them root's" "0/0" "$(awk '{print $2}' "$x/outer.list" | sort -u)"
    tar -xzf "$ipk" -C "$x/outer"
    check_eq "$arch: debian-binary" "2.0" "$(cat "$x/outer/debian-binary")"

    tar -xzf "$x/outer/control.tar.gz" -C "$x/control"
    field() { sed -n "s/^$1: //p" "$x/control/control"; }
    check_eq "$arch: Package" mlvpn "$(field Package)"
    check_eq "$arch: Version" "$version" "$(field Version)"
    check_eq "$arch: Architecture" "$arch" "$(field Architecture)"
    check_eq "$arch: Depends" kmod-tun "$(field Depends)"
    check "$arch: a Description" test -n "$(field Description)"
    check_eq "$arch: conffiles" /etc/config/mlvpn "$(cat "$x/control/conffiles")"
    # shellcheck disable=SC2016 # the scripts' own "$0" "$@"
    check "$arch: postinst runs default_postinst" grep -qx 'default_postinst "$0" "$@"' "$x/control/postinst"
    # shellcheck disable=SC2016 # the scripts' own "$0" "$@"
    check "$arch: prerm runs default_prerm" grep -qx 'default_prerm "$0" "$@"' "$x/control/prerm"
    check "$arch: postinst and prerm are executable" test -x "$x/control/postinst" -a -x "$x/control/prerm"
    check "$arch: postinst and prerm pass shellcheck -s sh" \
        shellcheck -s sh "$x/control/postinst" "$x/control/prerm"

    tar -xzf "$x/outer/data.tar.gz" -C "$x/data"
    tar -tvzf "$x/outer/data.tar.gz" | awk '$1 !~ /^d/ {print $1, $6}' |
        sed -e 's/^-rwxr-xr-x/755/' -e 's/^-rw-r--r--/644/' -e 's/^-rw-------/600/' |
        sort -k2 >"$x/files"
    check_same "$arch: data holds the Makefile's files with its modes" "$tmp/expected-files" "$x/files"
    check_eq "$arch: data all root's" "0/0" \
        "$(tar -tvzf "$x/outer/data.tar.gz" | awk '{print $2}' | sort -u)"
    check "$arch: init script as in the tree" cmp -s openwrt/mlvpn/files/mlvpn.init "$x/data/etc/init.d/mlvpn"
    check "$arch: UCI config as in the tree" cmp -s openwrt/mlvpn/files/mlvpn.config "$x/data/etc/config/mlvpn"
    check "$arch: renderer as in the tree" cmp -s openwrt/mlvpn/files/mlvpn.render "$x/data/usr/libexec/mlvpn/render"
    check "$arch: hotplug script as in the tree" cmp -s openwrt/mlvpn/files/mlvpn.hotplug \
        "$x/data/etc/hotplug.d/iface/95-mlvpn"

    bin=$x/data/usr/sbin/mlvpn
    case "$arch" in
    mips_24kc) machine="MIPS R3000" endian="big endian" qemu=qemu-mips-static ;;
    mipsel_24kc) machine="MIPS R3000" endian="little endian" qemu=qemu-mipsel-static ;;
    arm_*) machine=ARM endian="little endian" qemu=qemu-arm-static ;;
    aarch64_*) machine=AArch64 endian="little endian" qemu=qemu-aarch64-static ;;
    x86_64) machine="Advanced Micro Devices X86-64" endian="little endian" qemu= ;;
    esac
    check "$arch: binary for $machine" elf_header_has "$bin" "Machine: *$machine\$"
    check "$arch: binary $endian" elf_header_has "$bin" "Data: .*$endian"
    check "$arch: binary static (no interpreter)" not elf_has_interpreter "$bin"
    check "$arch: binary stripped (no symbols, no .pdr)" not elf_has_symbols "$bin"
    if [ -z "$qemu" ]; then
        check_eq "$arch: binary runs" "mlvpn $cargo_version" "$("$bin" --version)"
    elif command -v "$qemu" >/dev/null; then
        check_eq "$arch: binary runs under $qemu" "mlvpn $cargo_version" "$("$qemu" "$bin" --version)"
    else
        echo "SKIPPED (needs $qemu): $arch: binary runs"
    fi
done

finish
