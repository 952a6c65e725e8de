#!/bin/sh
# Builds the Debian packages with cross/debian/build-deb.sh and inspects them:
#
#   tests/pkg/deb_test.sh
#
# * dpkg-deb --info: the fields, the maintainer scripts (which pass shellcheck -s sh);
# * dpkg-deb --contents: exactly the files expected, root's, with their modes (/etc/mlvpn
#   private);
# * the binary runs (arm64 under qemu-user); the sample server and client configs pass
#   mlvpn check-config;
# * mlvpn@.service passes systemd-analyze verify, reloads by SIGHUP, lets mlvpn reach
#   /dev/net/tun and its sockets, and its exposure score (systemd-analyze security) is
#   printed. systemd is not PID 1 here, so the unit is checked, not run.
set -eu
cd "$(dirname "$0")/../.."
# shellcheck disable=SC1091 # checked on its own
. tests/pkg/lib.sh

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
cross/debian/build-deb.sh amd64 arm64

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cat >"$tmp/expected" <<'LIST'
drwxr-xr-x ./
drwxr-xr-x ./etc/
drwx------ ./etc/mlvpn/
drwxr-xr-x ./usr/
drwxr-xr-x ./usr/lib/
drwxr-xr-x ./usr/lib/systemd/
drwxr-xr-x ./usr/lib/systemd/system/
-rw-r--r-- ./usr/lib/systemd/system/mlvpn@.service
drwxr-xr-x ./usr/sbin/
-rwxr-xr-x ./usr/sbin/mlvpn
drwxr-xr-x ./usr/share/
drwxr-xr-x ./usr/share/doc/
drwxr-xr-x ./usr/share/doc/mlvpn/
-rw-r--r-- ./usr/share/doc/mlvpn/README.md
-rw-r--r-- ./usr/share/doc/mlvpn/copyright
drwxr-xr-x ./usr/share/doc/mlvpn/examples/
-rw-r--r-- ./usr/share/doc/mlvpn/examples/client.conf
-rwxr-xr-x ./usr/share/doc/mlvpn/examples/mlvpn_updown.sh
-rw-r--r-- ./usr/share/doc/mlvpn/examples/server.conf
LIST

for arch in amd64 arm64; do
    echo "== $arch"
    deb=target/debian/mlvpn_${version}-1_$arch.deb
    x=$tmp/$arch
    mkdir -p "$x/root" "$x/control"

    dpkg-deb --info "$deb" >"$x/info"
    field() { dpkg-deb --field "$deb" "$1"; }
    check_eq "$arch: Package" mlvpn "$(field Package)"
    check_eq "$arch: Version" "$version-1" "$(field Version)"
    check_eq "$arch: Architecture" "$arch" "$(field Architecture)"
    check "$arch: a Maintainer" test -n "$(field Maintainer)"
    check "$arch: a Description" test -n "$(field Description)"
    check_eq "$arch: no Depends (static binary)" "" "$(field Depends)"
    for script in postinst prerm postrm; do
        check "$arch: --info lists $script" grep -q " $script " "$x/info"
    done

    dpkg-deb --contents "$deb" | awk '{print $1, $6}' >"$x/contents"
    check_same "$arch: --contents: the files and modes expected" "$tmp/expected" "$x/contents"
    check_eq "$arch: all root's" "root/root" "$(dpkg-deb --contents "$deb" | awk '{print $2}' | sort -u)"

    dpkg-deb --extract "$deb" "$x/root"
    dpkg-deb --control "$deb" "$x/control"
    check "$arch: maintainer scripts pass shellcheck -s sh" \
        shellcheck -s sh "$x/control/postinst" "$x/control/prerm" "$x/control/postrm"
    check "$arch: the example hook passes shellcheck -s sh" \
        shellcheck -s sh "$x/root/usr/share/doc/mlvpn/examples/mlvpn_updown.sh"

    bin=$x/root/usr/sbin/mlvpn
    case "$arch" in
    amd64) run="" ;;
    arm64) run=qemu-aarch64-static ;;
    esac
    if [ -n "$run" ] && ! command -v "$run" >/dev/null; then
        echo "SKIPPED (needs $run): $arch binary runs"
        continue
    fi
    check_eq "$arch: the binary runs" "mlvpn $version" "$($run "$bin" --version)"
    for sample in server client; do
        cp "$x/root/usr/share/doc/mlvpn/examples/$sample.conf" "$x/$sample.conf"
        chmod 600 "$x/$sample.conf"
        check "$arch: examples/$sample.conf passes check-config" \
            sh -c "$run \"\$1\" check-config -c \"\$2\" | grep -q 'OK ($sample, 3 links)'" - "$bin" "$x/$sample.conf"
    done
done

echo "== mlvpn@.service"
unit=$tmp/amd64/root/usr/lib/systemd/system/mlvpn@.service
unit_has() { grep -qxF "$1" "$unit"; }
check "one instance per file" unit_has 'ExecStart=/usr/sbin/mlvpn --config /etc/mlvpn/%i.conf --name mlvpn-%i --user nobody'
check "the file is checked before start" unit_has 'ExecStartPre=/usr/sbin/mlvpn check-config --config /etc/mlvpn/%i.conf'
# shellcheck disable=SC2016 # systemd's $MAINPID
check "reload by SIGHUP" unit_has 'ExecReload=/bin/kill -HUP $MAINPID'
check "TUN device allowed" unit_has 'DeviceAllow=/dev/net/tun rw'
check "sockets allowed" unit_has 'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK'
check "capabilities: network and the privilege drop" unit_has 'CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_BIND_SERVICE CAP_NET_RAW CAP_SETUID CAP_SETGID CAP_SYS_CHROOT'
check "chroot allowed" unit_has 'SystemCallFilter=chroot'
check "hardened" unit_has 'ProtectSystem=strict'
if command -v systemd-analyze >/dev/null; then
    # Verified against this machine's units, with the binary where the test extracted it.
    mkdir -p "$tmp/units"
    sed "s#/usr/sbin/mlvpn#$tmp/amd64/root/usr/sbin/mlvpn#g" "$unit" >"$tmp/units/mlvpn@test.service"
    check "systemd-analyze verify" systemd-analyze verify "$tmp/units/mlvpn@test.service"
    score=$(systemd-analyze security --offline=yes "$tmp/units/mlvpn@test.service" 2>/dev/null |
        sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
    echo "systemd-analyze security: exposure $score (0 = locked down, 10 = unprotected)"
    check "exposure at most 3.0" awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 3.0) }'
else
    echo "SKIPPED (needs systemd-analyze): systemd-analyze verify"
fi

finish
