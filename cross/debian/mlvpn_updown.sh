#!/bin/sh
# An mlvpn hook (statuscommand) for a server: gives the tunnel device its address when the
# first link comes up. Copy it to /etc/mlvpn/mlvpn_updown.sh (owned by root, chmod 700) and
# set statuscommand = /etc/mlvpn/mlvpn_updown.sh in [general].
#
# Called as: mlvpn_updown.sh DEVICE EVENT [LINK], with DEVICE, MTU, IP4, IP6, IP4_GATEWAY,
# IP6_GATEWAY, IP4_ROUTES, IP6_ROUTES in the environment (from mlvpn.conf).
#
# Forwarding and NAT for the clients' traffic belong in the system's configuration, not here:
#   echo net.ipv4.ip_forward=1 > /etc/sysctl.d/90-mlvpn.conf && sysctl --system
#   nft add table ip nat; nft add chain ip nat post '{ type nat hook postrouting priority 100; }'
#   nft add rule ip nat post oifname "eth0" ip saddr 10.42.42.0/30 masquerade
device=$1
event=$2

case "$event" in
tuntap_up)
    [ -z "${IP4:-}" ] || ip -4 addr replace "$IP4" dev "$device"
    [ -z "${IP6:-}" ] || ip -6 addr replace "$IP6" dev "$device"
    ip link set dev "$device" mtu "$MTU" up
    # A tun device is point to point: the gateway matters only for tap.
    for route in ${IP4_ROUTES:-}; do
        if [ -n "${IP4_GATEWAY:-}" ]; then
            ip -4 route replace "$route" via "$IP4_GATEWAY" dev "$device"
        else
            ip -4 route replace "$route" dev "$device"
        fi
    done
    for route in ${IP6_ROUTES:-}; do
        if [ -n "${IP6_GATEWAY:-}" ]; then
            ip -6 route replace "$route" via "$IP6_GATEWAY" dev "$device"
        else
            ip -6 route replace "$route" dev "$device"
        fi
    done
    ;;
tuntap_down)
    ip addr flush dev "$device"
    ;;
esac
exit 0
