#!/bin/sh
# Peak memory of the daemon: server and client with 3 links and the default buffer sizes (as
# in the samples), in two network namespaces, carrying TCP both ways: first at a router's pace
# (each link shaped to 20 Mbit/s with tbf), then as fast as veth goes; VmHWM (peak resident
# set) of each process from /proc/PID/status after each.
#
#   tests/pkg/rss.sh [BINARY]     (default: the shipped x86_64 static binary of cross/build.sh)
#
# Prints each end's RSS once the tunnel is up (idle) and its peak under each load, against the
# goal of 2 MiB (the C original used 14 MB). Most of the peak is buffers sized for links of
# real delay (100 Mbit/s with 100 ms between the fastest and slowest link), in pools whose
# memory is touched only when used: the resend store (retransmit_buffer_size, 1024 packets,
# ~1.4 MiB, filled as far as the links' round trips need), the reorder buffer (1024 slots, as
# many touched as are held at once), the tunnel's send queue (512 slots, the same) and the
# receive slots for joined datagrams (0.25 MiB). The check fails above 5 MiB (a regression,
# not the goal). Needs root, iproute2 and python3 (iperf3 too, if installed, for a throughput
# figure); says SKIPPED and exits 0 without root.
set -eu
cd "$(dirname "$0")/../.."
# shellcheck disable=SC1091 # checked on their own
. tests/pkg/lib.sh
# shellcheck disable=SC1091
. tests/pkg/netns_lib.sh

if [ "$(id -u)" != 0 ]; then
    echo "SKIPPED (needs root): rss"
    exit 0
fi
bin=${1:-target/cross/x86_64-unknown-linux-musl/mlvpn}
[ -n "${1:-}" ] || [ -f "$bin" ] || cross/build.sh x86_64-unknown-linux-musl
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
GOAL_KIB=2048
GUARD_KIB=5120
echo "binary: $bin"

tmp=$(mktemp -d)
trap 'netns_cleanup; rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

netns_setup 3
netns_configs "$tmp" 3 1024
netns_start "$tmp" "$bin" "$bin"
check "the tunnel comes up" netns_wait_tunnel 30

kib() { sed -n "s/^$2:[[:space:]]*\([0-9]*\) kB$/\1/p" "/proc/$1/status"; }
echo "idle, tunnel up: server RSS $(kib "$SRV_PID" VmRSS) KiB, client RSS $(kib "$CLI_PID" VmRSS) KiB"

# MIB MiB each way, at the same time.
transfer() { # NAMESPACE_OF_RECEIVER NAMESPACE_OF_SENDER ADDRESS PORT MIB
    ip netns exec "$1" python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1); s.settimeout(60)
c, _ = s.accept(); c.settimeout(60); n = 0
while True:
    b = c.recv(65536)
    if not b: break
    n += len(b)
print(n)
' "$3" "$4" >"$tmp/recv-$4" &
    receiver=$!
    sleep 0.5
    ip netns exec "$2" python3 -c '
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=60)
chunk = bytes(1 << 20)
for _ in range(int(sys.argv[3])): s.sendall(chunk)
s.close()
' "$3" "$4" "$5"
    wait "$receiver"
}
both_ways() { # MIB PORT_UP PORT_DOWN
    transfer "$SRV" "$CLI" 10.42.42.1 "$2" "$1" &
    up=$!
    transfer "$CLI" "$SRV" 10.42.42.2 "$3" "$1" &
    down=$!
    wait "$up" "$down" || true
    check_eq "$1 MiB client to server" $(($1 << 20)) "$(cat "$tmp/recv-$2")"
    check_eq "$1 MiB server to client" $(($1 << 20)) "$(cat "$tmp/recv-$3")"
}
peaks() { # WHEN
    echo "$1: peak RSS (VmHWM) server $(kib "$SRV_PID" VmHWM) KiB, client $(kib "$CLI_PID" VmHWM) KiB"
    # What the packet pools took, as each daemon reports it.
    for end in server client; do
        echo "  $end $("$bin" status -c "$tmp/$end.conf" | grep '^pools' || echo 'pools: (no answer)')"
    done
}

# A router's load first (the peak only grows): each link shaped to 20 Mbit/s each way.
for ns in "$SRV" "$CLI"; do
    for i in 1 2 3; do
        ip netns exec "$ns" tc qdisc add dev "l$i" root tbf rate 20mbit burst 32kb latency 50ms
    done
done
both_ways 16 5203 5204
peaks "3 x 20 Mbit/s, 16 MiB each way"
for ns in "$SRV" "$CLI"; do
    for i in 1 2 3; do
        ip netns exec "$ns" tc qdisc del dev "l$i" root
    done
done

# Then as fast as veth goes.
both_ways 32 5201 5202
peaks "then unshaped, 32 MiB each way"
if command -v iperf3 >/dev/null; then
    ip netns exec "$SRV" iperf3 -s -1 -B 10.42.42.1 >/dev/null 2>&1 &
    iperf_server=$!
    sleep 0.5
    ip netns exec "$CLI" iperf3 -c 10.42.42.1 -t 3 -P 4 2>/dev/null | grep -E 'SUM.*receiver' || true
    wait "$iperf_server" || true
fi

for end in server client; do
    if [ "$end" = server ]; then pid=$SRV_PID; else pid=$CLI_PID; fi
    hwm=$(kib "$pid" VmHWM)
    rss=$(kib "$pid" VmRSS)
    if [ "$hwm" -le "$GOAL_KIB" ]; then verdict="within"; else verdict="over"; fi
    echo "$end: peak RSS (VmHWM) $hwm KiB, RSS now $rss KiB: $verdict the goal of $GOAL_KIB KiB"
    check "$end: peak RSS $hwm KiB, within $GUARD_KIB KiB" test "$hwm" -le "$GUARD_KIB"
done

finish
