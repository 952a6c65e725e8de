# Two network namespaces joined by N veth links, an mlvpn server in one and a client in the
# other, configured as in the README's quick start. Sourced by mips_e2e.sh and rss.sh; needs
# root and iproute2.
#
#   netns_setup N                 namespaces $SRV and $CLI; link i: 10.201.i.1 (server) and
#                                 10.201.i.2 (client), server port 5080+i-1
#   netns_configs DIR N [REORDER] DIR/server.conf, DIR/client.conf, DIR/updown.sh;
#                                 REORDER is reorder_buffer_size (default 1024); control
#                                 sockets DIR/server.sock and DIR/client.sock
#   netns_start DIR SERVER_CMD CLIENT_CMD
#                                 start both daemons (a command may be "qemu-mips-static BIN");
#                                 pids in $SRV_PID and $CLI_PID, logs in DIR/*.log
#   netns_wait_tunnel SECONDS     until the client's tunnel address answers through the tunnel
#   netns_cleanup                 stop the daemons, delete the namespaces
#
# Tunnel: server 10.42.42.1/30, client 10.42.42.2/30, set by the hook script on tuntap_up.

SRV=mlvpnpkg-srv-$$
CLI=mlvpnpkg-cli-$$
SRV_PID=
CLI_PID=

netns_setup() {
    ip netns add "$SRV"
    ip netns add "$CLI"
    ip -n "$SRV" link set lo up
    ip -n "$CLI" link set lo up
    i=1
    while [ "$i" -le "$1" ]; do
        ip link add "l$i" netns "$CLI" type veth peer name "l$i" netns "$SRV"
        ip -n "$SRV" addr add "10.201.$i.1/24" dev "l$i"
        ip -n "$CLI" addr add "10.201.$i.2/24" dev "l$i"
        ip -n "$SRV" link set "l$i" up
        ip -n "$CLI" link set "l$i" up
        i=$((i + 1))
    done
}

netns_configs() {
    dir=$1
    cat >"$dir/updown.sh" <<'HOOK'
#!/bin/sh
# $1 device, $2 event: the tunnel address on the first link up.
[ "$2" = tuntap_up ] && ip addr replace "$IP4" dev "$1"
exit 0
HOOK
    chmod 700 "$dir/updown.sh"
    {
        printf '[general]\nmode = server\npassword = %s\nstatuscommand = %s\n' \
            "pkg-test-password" "$dir/updown.sh"
        printf 'ip4 = 10.42.42.1/30\ntimeout = 10\nreorder_buffer_size = %s\n' "${3:-1024}"
        printf 'control_unix_path = %s/server.sock\n' "$dir"
        i=1
        while [ "$i" -le "$2" ]; do
            printf '[link%s]\nbindhost = 10.201.%s.1\nbindport = %s\n' "$i" "$i" $((5079 + i))
            i=$((i + 1))
        done
    } >"$dir/server.conf"
    {
        printf '[general]\nmode = client\npassword = %s\nstatuscommand = %s\n' \
            "pkg-test-password" "$dir/updown.sh"
        printf 'ip4 = 10.42.42.2/30\ntimeout = 10\nreorder_buffer_size = %s\n' "${3:-1024}"
        printf 'control_unix_path = %s/client.sock\n' "$dir"
        i=1
        while [ "$i" -le "$2" ]; do
            printf '[link%s]\nbindhost = 10.201.%s.2\nremotehost = 10.201.%s.1\nremoteport = %s\n' \
                "$i" "$i" "$i" $((5079 + i))
            i=$((i + 1))
        done
    } >"$dir/client.conf"
    chmod 600 "$dir/server.conf" "$dir/client.conf"
}

netns_start() {
    dir=$1
    # shellcheck disable=SC2086 # a command and its arguments
    ip netns exec "$SRV" $2 -c "$dir/server.conf" --debug --yes-run-as-root >"$dir/server.log" 2>&1 &
    SRV_PID=$!
    # shellcheck disable=SC2086 # a command and its arguments
    ip netns exec "$CLI" $3 -c "$dir/client.conf" --debug --yes-run-as-root >"$dir/client.log" 2>&1 &
    CLI_PID=$!
}

# ICMP echo to $2 from namespace $1, without iputils-ping: python3 with a raw socket.
netns_ping() {
    ip netns exec "$1" python3 - "$2" <<'PY'
import os, socket, struct, sys, time
def checksum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF)
    return ~(s + (s >> 16)) & 0xFFFF
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
sock.settimeout(1)
ident = os.getpid() & 0xFFFF
body = b"mlvpn" * 8
header = struct.pack("!BBHHH", 8, 0, 0, ident, 1)
packet = struct.pack("!BBHHH", 8, 0, checksum(header + body), ident, 1) + body
start = time.monotonic()
sock.sendto(packet, (sys.argv[1], 0))
try:
    while True:
        data, _ = sock.recvfrom(2048)
        icmp = data[(data[0] & 0x0F) * 4:]
        if icmp[0] == 0 and struct.unpack("!H", icmp[4:6])[0] == ident:
            print("%.1f ms" % ((time.monotonic() - start) * 1000))
            sys.exit(0)
except socket.timeout:
    sys.exit(1)
PY
}

netns_wait_tunnel() {
    deadline=$(($(date +%s) + $1))
    while ! netns_ping "$CLI" 10.42.42.1 >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        kill -0 "$SRV_PID" 2>/dev/null || return 1
        kill -0 "$CLI_PID" 2>/dev/null || return 1
        sleep 0.2
    done
}

# Bytes received on link i's server end.
netns_rx_bytes() {
    ip netns exec "$SRV" cat "/sys/class/net/l$1/statistics/rx_bytes"
}

netns_cleanup() {
    for pid in $CLI_PID $SRV_PID; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in $CLI_PID $SRV_PID; do
        wait "$pid" 2>/dev/null || true
    done
    ip netns del "$CLI" 2>/dev/null || true
    ip netns del "$SRV" 2>/dev/null || true
}
