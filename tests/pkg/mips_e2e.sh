#!/bin/sh
# End to end across byte orders: a big-endian MIPS mlvpn client, run by qemu-user, against
# an x86_64 server, in two network namespaces joined by two veth links; ICMP and a TCP
# transfer through the tunnel, over both links; then what OpenWrt does when a WAN goes down
# (a config without that link, and SIGHUP): the tunnel device stays and traffic goes on over
# the other link.
#
#   tests/pkg/mips_e2e.sh
#
# Environment:
#   MLVPN_CLIENT_CMD  how to run the client (default: qemu-mips-static MLVPN_CLIENT_BIN)
#   MLVPN_CLIENT_BIN  the client binary (default: target/cross/mips-unknown-linux-musl/mlvpn,
#                     built by cross/build.sh if missing)
#   MLVPN_SERVER_BIN  the server binary (default: $MLVPN_BIN, else a release build of this
#                     tree for the host)
#   TRANSFER_MIB      size of the TCP transfer (default 8)
#
# Needs root, iproute2, python3 and qemu-user-static; says SKIPPED and exits 0 without root.
set -eu
cd "$(dirname "$0")/../.."
# shellcheck disable=SC1091 # checked on their own
. tests/pkg/lib.sh
# shellcheck disable=SC1091
. tests/pkg/netns_lib.sh

if [ "$(id -u)" != 0 ]; then
    echo "SKIPPED (needs root): mips_e2e"
    exit 0
fi
client_bin=${MLVPN_CLIENT_BIN:-target/cross/mips-unknown-linux-musl/mlvpn}
if [ -z "${MLVPN_CLIENT_CMD:-}" ] && [ ! -f "$client_bin" ]; then
    cross/build.sh mips-unknown-linux-musl
fi
client_cmd=${MLVPN_CLIENT_CMD:-qemu-mips-static $PWD/$client_bin}
server_bin=${MLVPN_SERVER_BIN:-$(host_mlvpn)}
mib=${TRANSFER_MIB:-8}
echo "client: $client_cmd"
echo "server: $server_bin"

tmp=$(mktemp -d)
trap 'netns_cleanup; rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

netns_setup 2
netns_configs "$tmp" 2
# qemu-user passes the UDP_SEGMENT and UDP_GRO control messages of the links' sockets through
# unconverted, so a big-endian program under it would give the kernel byte-swapped segment
# sizes (real big-endian hardware has no such problem). The emulated client runs without
# offloads; the server keeps its own, so UDP runs it sends arrive cut by the client's kernel.
sed -i 's/^\[general\]$/[general]\ntun_offload = 0/' "$tmp/client.conf"
# Both links must carry the transfer, to show each one's byte order right: the round-robin
# scheduler spreads it; the default one would keep it on whichever unshaped link is quicker.
sed -i 's/^\[general\]$/[general]\nscheduler = wrr/' "$tmp/client.conf" "$tmp/server.conf"
netns_start "$tmp" "$server_bin" "$client_cmd"

if netns_wait_tunnel 30; then
    pass "the tunnel comes up (MIPS client, x86_64 server)"
else
    fail "the tunnel comes up (MIPS client, x86_64 server)"
    echo "--- server log"
    cat "$tmp/server.log"
    echo "--- client log"
    cat "$tmp/client.log"
    finish
    exit 1
fi

for n in 1 2 3; do
    if rtt=$(netns_ping "$CLI" 10.42.42.1); then
        pass "ICMP echo $n through the tunnel ($rtt)"
    else
        fail "ICMP echo $n through the tunnel"
    fi
done

# TCP: the client sends MIB MiB of random bytes to the server, both print SHA-256 (into
# $tmp/sent and $tmp/received); d1 and d2 are the bytes each link carried meanwhile.
tcp_transfer() {
    ip netns exec "$SRV" python3 -c '
import hashlib, socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.42.42.1", 5201)); s.listen(1); s.settimeout(60)
c, _ = s.accept(); c.settimeout(60); h = hashlib.sha256(); n = 0
while True:
    b = c.recv(65536)
    if not b: break
    h.update(b); n += len(b)
print(n, h.hexdigest())
' >"$tmp/received" &
    receiver=$!
    sleep 0.5
    rx1=$(netns_rx_bytes 1)
    rx2=$(netns_rx_bytes 2)
    start=$(date +%s.%N)
    ip netns exec "$CLI" python3 -c '
import hashlib, os, socket, sys
data = os.urandom(int(sys.argv[1]) << 20)
s = socket.create_connection(("10.42.42.1", 5201), timeout=60)
s.sendall(data); s.close()
print(len(data), hashlib.sha256(data).hexdigest())
' "$1" >"$tmp/sent"
    wait "$receiver" || true
    end=$(date +%s.%N)
    d1=$(($(netns_rx_bytes 1) - rx1))
    d2=$(($(netns_rx_bytes 2) - rx2))
}

tcp_transfer "$mib"
check_eq "TCP: $mib MiB arrive intact" "$(cat "$tmp/sent")" "$(cat "$tmp/received")"
echo "TCP: $mib MiB in $(echo "$end $start" | awk '{printf "%.1f", $1 - $2}') s"
echo "bytes received by the server: link1 $d1, link2 $d2"
check "TCP: link 1 carried at least a tenth" test "$d1" -gt $((mib * 1048576 / 10))
check "TCP: link 2 carried at least a tenth" test "$d2" -gt $((mib * 1048576 / 10))

# A WAN going down on OpenWrt: the init script renders the file without that link and procd
# sends SIGHUP. The tunnel device must stay (same ifindex) and carry traffic on link 1.
ifindex=$(ip -n "$CLI" -o link show mlvpn0 | cut -d: -f1)
awk '/^\[link2\]/ { skip = 1 } /^\[link1\]/ { skip = 0 } !skip' "$tmp/client.conf" >"$tmp/one-link.conf"
cat "$tmp/one-link.conf" >"$tmp/client.conf"
hup_at=$(date +%s.%N)
kill -HUP "$CLI_PID"
sleep 0.2
check "SIGHUP with a link removed: the client keeps running" kill -0 "$CLI_PID"
check_eq "SIGHUP: the tunnel device stays" "$ifindex" "$(ip -n "$CLI" -o link show mlvpn0 | cut -d: -f1)"
check "SIGHUP: the tunnel carries traffic again within 15 s, on link 1" netns_wait_tunnel 15
echo "SIGHUP: traffic again $(echo "$(date +%s.%N) $hup_at" | awk '{printf "%.1f", $1 - $2}') s after the signal"
tcp_transfer 2
check_eq "SIGHUP: 2 MiB arrive intact" "$(cat "$tmp/sent")" "$(cat "$tmp/received")"
echo "after SIGHUP, bytes received by the server: link1 $d1, link2 $d2"
check "SIGHUP: link 1 carries them" test "$d1" -gt 2097152
# Only the kernel's own chatter (ARP, IPv6 neighbour discovery) on the veth of link 2.
check "SIGHUP: link 2 carries none of them" test "$d2" -lt 16384

kill -TERM "$CLI_PID"
rc=0
wait "$CLI_PID" || rc=$?
CLI_PID=
check_eq "SIGTERM: the MIPS client exits 0" 0 "$rc"

finish
