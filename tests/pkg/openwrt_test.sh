#!/bin/sh
# Tests the OpenWrt package's scripts off the router, against a real `uci` (built by
# build_uci.sh from the libuci sources) and the real `mlvpn check-config`:
#
#   tests/pkg/openwrt_test.sh
#
# * the renderer turns UCI fixtures into mlvpn.conf files equal to the golden files in
#   tests/pkg/openwrt/ (UPDATE_GOLDEN=1 rewrites them), which mlvpn check-config accepts;
#   WANs that are down are left out without shifting the others' ports; errors are refused;
# * the shipped /etc/config/mlvpn, edited with uci commands as a user would, renders a
#   config mlvpn accepts;
# * the init script, with procd's functions stubbed, renders a private file, declares the
#   instance procd should run (reload by SIGHUP, respawn, root until privilege separation),
#   keeps the last good file when the new one is broken, and stops when no WAN is up;
# * the hotplug script reloads only for interfaces mlvpn binds to.
#
# Scripts run under busybox sh (OpenWrt's shell) when busybox is installed, else under sh.
set -eu
cd "$(dirname "$0")/../.."
# shellcheck disable=SC1091 # checked on its own
. tests/pkg/lib.sh

root=$PWD
files=$root/openwrt/mlvpn/files
fixtures=$root/tests/pkg/openwrt
uci_bin=$(tests/pkg/build_uci.sh)
PATH=$(dirname "$uci_bin"):$PATH
export PATH
mlvpn=$(host_mlvpn)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# OpenWrt's shell, busybox ash, where there is one; else this machine's sh.
sh_cmd=$tmp/osh
if command -v busybox >/dev/null; then
    printf '#!/bin/sh\nexec busybox sh "$@"\n' >"$sh_cmd"
else
    printf '#!/bin/sh\nexec sh "$@"\n' >"$sh_cmd"
fi
chmod +x "$sh_cmd"
echo "shell: $(sed -n 2p "$sh_cmd"); uci: $uci_bin; mlvpn: $mlvpn"

# render UCI_DIR ARGS...: the renderer under OpenWrt's shell.
render() {
    dir=$1
    shift
    "$sh_cmd" "$files/mlvpn.render" -c "$dir" "$@"
}

# check_config DESCRIPTION FILE EXPECTED_SUMMARY: mlvpn check-config accepts FILE.
check_config() {
    chmod 600 "$2"
    if out=$("$mlvpn" check-config -c "$2" 2>&1); then
        case "$out" in
        *"$3"*) pass "$1" ;;
        *) fail "$1: $out" ;;
        esac
    else
        fail "$1"
        echo "$out" | sed 's/^/  /'
    fi
}

echo "== renderer: three WANs"
addrs="wan=192.0.2.2 wan_b=198.51.100.2 wwan=203.0.113.7"
# shellcheck disable=SC2086 # a list of IFACE=ADDRESS words
render "$fixtures/three-wans" conf general $addrs >"$tmp/all-up.conf"
check_file "three WANs up: golden file" "$fixtures/three-wans/all-up.conf" "$tmp/all-up.conf"
check_config "three WANs up: mlvpn accepts it" "$tmp/all-up.conf" "OK (client, 3 links)"

render "$fixtures/three-wans" conf general wan=192.0.2.2 wwan=203.0.113.7 \
    >"$tmp/wan2-down.conf" 2>"$tmp/err"
check_file "one WAN down: golden file" "$fixtures/three-wans/wan2-down.conf" "$tmp/wan2-down.conf"
check_config "one WAN down: mlvpn accepts it" "$tmp/wan2-down.conf" "OK (client, 2 links)"
check "one WAN down: the link keeps its port" grep -qx 'remoteport = 5082' "$tmp/wan2-down.conf"
check "one WAN down: says which link is left out" \
    grep -q "link wan2 left out: interface wan_b has no IPv4 address" "$tmp/err"

rc=0
render "$fixtures/three-wans" conf general >/dev/null 2>&1 || rc=$?
check_eq "no WAN up: exit status 2, nothing to run" 2 "$rc"

check_eq "instances: the enabled ones" general "$(render "$fixtures/three-wans" instances)"
check_eq "interfaces: of the enabled links, in order" "wan wan_b wwan" \
    "$(render "$fixtures/three-wans" interfaces general | tr '\n' ' ' | sed 's/ $//')"
check "uses: a WAN of a link" render "$fixtures/three-wans" uses wwan
check "uses: not the LAN" not render "$fixtures/three-wans" uses lan
check "uses: not a disabled link's WAN" not render "$fixtures/three-wans" uses wan_c

echo "== renderer: a server"
render "$fixtures/server" conf general wan=203.0.113.10 >"$tmp/server.conf"
check_file "server: golden file" "$fixtures/server/server.conf" "$tmp/server.conf"
check_config "server: mlvpn accepts it" "$tmp/server.conf" "OK (server, 3 links)"
check_eq "server: only links naming an interface need an address" wan \
    "$(render "$fixtures/server" interfaces general)"

echo "== renderer: the shipped /etc/config/mlvpn, edited with uci"
mkdir -p "$tmp/shipped" "$tmp/delta"
cp "$files/mlvpn.config" "$tmp/shipped/mlvpn"
check_eq "shipped: disabled, so no instance" "" "$(render "$tmp/shipped" instances)"
u() { uci -c "$tmp/shipped" -t "$tmp/delta" "$@"; }
u set mlvpn.general.enable=1
u set mlvpn.general.password="$("$mlvpn" genkey)"
# OMR's package spells it so; the dictionary spelling, set in the shipped file, wins.
u set mlvpn.general.loss_tolerence=50
u add mlvpn link >/dev/null
u set mlvpn.@link[-1].interface=wwan
u set mlvpn.@link[-1].fallback_only=1
u commit mlvpn
check_eq "shipped + enable: one instance" general "$(render "$tmp/shipped" instances)"
render "$tmp/shipped" conf general wan=192.0.2.2 wwan=198.51.100.9 >"$tmp/shipped.conf"
check_config "shipped + a second WAN added with uci: mlvpn accepts it" "$tmp/shipped.conf" \
    "OK (client, 2 links)"
check "shipped: the added link is on firstport + 1" grep -qx 'remoteport = 5081' "$tmp/shipped.conf"
check "shipped: loss_tolerance as set in the file" grep -qx 'loss_tolerance = 100' "$tmp/shipped.conf"
u delete mlvpn.general.loss_tolerance
u commit mlvpn
render "$tmp/shipped" conf general wan=192.0.2.2 >"$tmp/omr.conf" 2>/dev/null
check "shipped: OMR's loss_tolerence spelling is read" grep -qx 'loss_tolerance = 50' "$tmp/omr.conf"

echo "== renderer: errors"
# expect_error DESCRIPTION MESSAGE UCI_SET...: after these uci sets on a copy of three-wans,
# conf fails with status 1 and MESSAGE on stderr.
expect_error() {
    what=$1 message=$2
    shift 2
    rm -rf "$tmp/bad" "$tmp/delta"
    mkdir -p "$tmp/bad" "$tmp/delta"
    cp "$fixtures/three-wans/mlvpn" "$tmp/bad/mlvpn"
    for s in "$@"; do
        uci -c "$tmp/bad" -t "$tmp/delta" set "$s"
    done
    uci -c "$tmp/bad" -t "$tmp/delta" commit mlvpn
    rc=0
    render "$tmp/bad" conf general wan=192.0.2.2 >/dev/null 2>"$tmp/err" || rc=$?
    if [ "$rc" = 1 ] && grep -qF "$message" "$tmp/err"; then
        pass "$what"
    else
        fail "$what (status $rc)"
        sed 's/^/  /' "$tmp/err"
    fi
}
expect_error "a boolean that is not one" "mlvpn.wan.enable: expected 0 or 1, got 'maybe'" \
    mlvpn.wan.enable=maybe
expect_error "a mode that does not exist" "expected client or server, got 'peer'" \
    mlvpn.general.mode=peer
expect_error "no port and no firstport" "link wan: set its port, or firstport in mlvpn.general" \
    mlvpn.general.firstport=
expect_error "a value with both quotes" "password: a value cannot hold both" \
    "mlvpn.general.password=it's \"quoted\""
rc=0
render "$fixtures/three-wans" conf nosuch >/dev/null 2>&1 || rc=$?
check_eq "an instance that does not exist" 1 "$rc"

echo "== init script, with procd stubbed"
# The init script as rc.common would run it, with the functions of procd, logger, the
# network library and the paths replaced: RENDER reads the fixture's UCI directory.
mkdir -p "$tmp/uci"
cp "$fixtures/three-wans/mlvpn" "$tmp/uci/mlvpn"
cat >"$tmp/render" <<SH
#!/bin/sh
exec $sh_cmd "$files/mlvpn.render" -c "$tmp/uci" "\$@"
SH
chmod +x "$tmp/render"
cat >"$tmp/harness.sh" <<'SH'
procd_open_instance() { echo "open_instance $*"; }
procd_set_param() { echo "set_param $*"; }
procd_close_instance() { echo "close_instance"; }
procd_add_reload_trigger() { echo "reload_trigger $*"; }
logger() { echo "logger $*" >>"$TMPDIR_T/log"; }
. "$INIT"
RENDER=$TMPDIR_T/render
PROG=$MLVPN
RUNDIR=$TMPDIR_T/var/etc/mlvpn
# The addresses of the WANs that are up, as network_get_ipaddr would give them.
wan_address() {
    for pair in $WAN_UP; do
        case "$pair" in "$2="*) eval "$1=\${pair#*=}"; return 0 ;; esac
    done
    return 1
}
"$@"
SH
init() {
    TMPDIR_T=$tmp INIT=$files/mlvpn.init MLVPN=$mlvpn "$sh_cmd" "$tmp/harness.sh" "$@"
}
conf=$tmp/var/etc/mlvpn/general.conf

WAN_UP="wan=192.0.2.2 wan_b=198.51.100.2 wwan=203.0.113.7" init start_service >"$tmp/calls"
check_file "start: the rendered file is the golden one" "$fixtures/three-wans/all-up.conf" "$conf"
check_eq "start: the file is private" "600" "$(stat -c %a "$conf")"
check_eq "start: its directory too" "700" "$(stat -c %a "$tmp/var/etc/mlvpn")"
cat >"$tmp/expected-calls" <<CALLS
open_instance general
set_param command $mlvpn --config $conf --name mlvpn --user nobody
set_param file $conf
set_param reload_signal HUP
set_param respawn 3600 5 5
set_param stderr 1
close_instance
CALLS
check_same "start: the instance procd runs" "$tmp/expected-calls" "$tmp/calls"
check_eq "triggers: reload on uci commit mlvpn" "reload_trigger mlvpn" "$(init service_triggers)"

before=$(md5sum <"$conf")
WAN_UP="wan=192.0.2.2 wwan=203.0.113.7" init start_service >"$tmp/calls"
check_file "a WAN down: the file procd watches changes" "$fixtures/three-wans/wan2-down.conf" "$conf"
check "a WAN down: same instance declared, so procd sends SIGHUP" cmp -s "$tmp/expected-calls" "$tmp/calls"
check "a WAN down: logged" grep -q "link wan2 left out" "$tmp/log"
check "a WAN down: the file differs, which is what procd compares" \
    test "$before" != "$(md5sum <"$conf")"

# A broken UCI edit: mlvpn check-config refuses it, the last good file stays.
uci -c "$tmp/uci" -t "$tmp/delta" set mlvpn.general.timeout=1
uci -c "$tmp/uci" -t "$tmp/delta" commit mlvpn
cp "$conf" "$tmp/good.conf"
WAN_UP="wan=192.0.2.2 wan_b=198.51.100.2 wwan=203.0.113.7" init start_service >"$tmp/calls"
check_same "a broken edit: the last good file stays" "$tmp/good.conf" "$conf"
check "a broken edit: the instance keeps running" cmp -s "$tmp/expected-calls" "$tmp/calls"
check "a broken edit: mlvpn's message is logged" grep -q "timeout" "$tmp/log"
check "a broken edit: no leftover" test ! -e "$conf.new"
uci -c "$tmp/uci" -t "$tmp/delta" set mlvpn.general.timeout=30
uci -c "$tmp/uci" -t "$tmp/delta" commit mlvpn

WAN_UP="" init start_service >"$tmp/calls"
check_eq "no WAN up: no instance, so procd stops mlvpn" "" "$(cat "$tmp/calls")"
check "no WAN up: the file is gone" test ! -e "$conf"

uci -c "$tmp/uci" -t "$tmp/delta" set mlvpn.general.enable=0
uci -c "$tmp/uci" -t "$tmp/delta" commit mlvpn
WAN_UP="wan=192.0.2.2" init start_service >"$tmp/calls"
check_eq "disabled: no instance" "" "$(cat "$tmp/calls")"

echo "== hotplug script"
# A fake /etc/init.d/mlvpn and render: records what the hotplug script asks for.
mkdir -p "$tmp/hp"
sed -e "s#/etc/init.d/mlvpn#$tmp/hp/initd#g" -e "s#/usr/libexec/mlvpn/render#$tmp/render#" \
    -e 's#logger #: #' "$files/mlvpn.hotplug" >"$tmp/hp/hotplug"
# shellcheck disable=SC2016 # $1 is for the fake script
printf '#!/bin/sh\necho "$1" >>"%s"\n' "$tmp/hp/called" >"$tmp/hp/initd"
chmod +x "$tmp/hp/initd"
cp "$fixtures/three-wans/mlvpn" "$tmp/uci/mlvpn"
hotplug() {
    rm -f "$tmp/hp/called"
    env ACTION="$1" INTERFACE="$2" IFUPDATE_ADDRESSES="${3:-}" "$sh_cmd" "$tmp/hp/hotplug"
    [ -f "$tmp/hp/called" ] && tr '\n' ' ' <"$tmp/hp/called" | sed 's/ $//'
}
check_eq "hotplug: ifup of a link's WAN reloads" "enabled reload" "$(hotplug ifup wan_b)"
check_eq "hotplug: ifdown of a link's WAN reloads" "enabled reload" "$(hotplug ifdown wwan)"
check_eq "hotplug: new address on a link's WAN reloads" "enabled reload" "$(hotplug ifupdate wan 1)"
check_eq "hotplug: an update without new address does nothing" "" "$(hotplug ifupdate wan)"
check_eq "hotplug: the LAN does nothing" "enabled" "$(hotplug ifup lan)"

finish
