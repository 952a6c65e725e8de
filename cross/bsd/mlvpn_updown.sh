#!/bin/sh
# An mlvpn hook (statuscommand) for FreeBSD and OpenBSD: when the tunnel comes up, gives the
# tunnel device its MTU and addresses and adds the configured routes; when it goes down, takes
# them away. The BSDs have no `ip`: this uses ifconfig(8) and route(8), where the Linux example
# (cross/debian/mlvpn_updown.sh) uses ip.
#
# Copy it next to the configuration (FreeBSD: /usr/local/etc/mlvpn/, OpenBSD: /etc/mlvpn/),
# owned by root, mode 700, and set statuscommand to that path in [general].
#
# Called as: mlvpn_updown.sh DEVICE EVENT [LINK], with MTU, IP4, IP6, IP4_GATEWAY, IP6_GATEWAY,
# IP4_ROUTES and IP6_ROUTES in the environment (from the configuration file), and mlvpn's PATH.
# A tun device is point to point: its IPv4 address needs the other end's, so set ip4_gateway
# (the samples do). Routes go via the gateways; without one, FreeBSD routes to the device
# itself, and OpenBSD needs the gateway.
#
# Forwarding and NAT for the clients' traffic belong in the system's configuration, not here:
#   FreeBSD: sysrc gateway_enable=YES; and in /etc/pf.conf:
#            nat on $ext_if inet from 10.42.42.0/30 to any -> ($ext_if)
#   OpenBSD: net.inet.ip.forwarding=1 in /etc/sysctl.conf; and in /etc/pf.conf:
#            match out on egress inet from 10.42.42.0/30 nat-to (egress)
device=$1
event=$2

say() {
    echo "mlvpn_updown.sh: $*" >&2
}

# The device is point to point (tun) rather than Ethernet (tap).
point_to_point() {
    ifconfig "$device" | head -n 1 | grep -q POINTOPOINT
}

# route_replace FAMILY DESTINATION GATEWAY: (re)adds a route, as `ip route replace` would.
route_replace() {
    route -n delete "-$1" "$2" >/dev/null 2>&1
    if [ -n "$3" ]; then
        route -n add "-$1" "$2" "$3"
    elif [ "$(uname -s)" = FreeBSD ]; then
        route -n add "-$1" "$2" -interface "$device"
    else
        say "no gateway for the route to $2: set ip4_gateway or ip6_gateway"
        return 1
    fi
}

status=0
case "$event" in
tuntap_up)
    [ -z "${MTU:-}" ] || ifconfig "$device" mtu "$MTU" || status=1
    if [ -n "${IP4:-}" ]; then
        if ! point_to_point; then
            ifconfig "$device" inet "$IP4" || status=1
        elif [ -n "${IP4_GATEWAY:-}" ]; then
            ifconfig "$device" inet "$IP4" "$IP4_GATEWAY" || status=1
        else
            say "$device is point to point: its address $IP4 needs ip4_gateway (the other end)"
            status=1
        fi
    fi
    if [ -n "${IP6:-}" ]; then
        case "$IP6" in
        */*) ifconfig "$device" inet6 "${IP6%/*}" prefixlen "${IP6#*/}" || status=1 ;;
        *) ifconfig "$device" inet6 "$IP6" || status=1 ;;
        esac
    fi
    ifconfig "$device" up || status=1
    for net in ${IP4_ROUTES:-}; do
        route_replace inet "$net" "${IP4_GATEWAY:-}" || status=1
    done
    for net in ${IP6_ROUTES:-}; do
        route_replace inet6 "$net" "${IP6_GATEWAY:-}" || status=1
    done
    ;;
tuntap_down)
    for net in ${IP4_ROUTES:-}; do
        route -n delete -inet "$net" >/dev/null 2>&1
    done
    for net in ${IP6_ROUTES:-}; do
        route -n delete -inet6 "$net" >/dev/null 2>&1
    done
    [ -z "${IP4:-}" ] || ifconfig "$device" inet "${IP4%/*}" -alias 2>/dev/null
    [ -z "${IP6:-}" ] || ifconfig "$device" inet6 "${IP6%/*}" -alias 2>/dev/null
    ;;
esac
exit "$status"
