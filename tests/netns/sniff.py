#!/usr/bin/env python3
"""Captures the payloads of UDP datagrams arriving on an interface, for the replay tests.

    sniff.py IFNAME DPORT COUNT TIMEOUT

Prints `listening` once the socket is bound, then one line per datagram received on IFNAME
(not sent by this host) whose UDP destination port is DPORT: `SRC_IP SRC_PORT HEX_PAYLOAD`.
Stops after COUNT datagrams or TIMEOUT seconds. A raw AF_PACKET socket: no tcpdump needed.
"""
import socket
import struct
import sys
import time

ETH_P_IP = 0x0800
PACKET_OUTGOING = 4


def main():
    ifname, dport, count, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
    s.bind((ifname, ETH_P_IP))
    s.settimeout(0.2)
    print("listening", flush=True)
    deadline = time.monotonic() + timeout
    got = 0
    while got < count and time.monotonic() < deadline:
        try:
            packet, addr = s.recvfrom(65535)
        except socket.timeout:
            continue
        if addr[2] == PACKET_OUTGOING or len(packet) < 28:
            continue
        ihl = (packet[0] & 0x0F) * 4
        if packet[9] != 17 or len(packet) < ihl + 8:
            continue
        sport, port, length = struct.unpack("!HHH", packet[ihl:ihl + 6])
        if port != dport:
            continue
        payload = packet[ihl + 8:ihl + length]
        print(socket.inet_ntoa(packet[12:16]), sport, payload.hex(), flush=True)
        got += 1


if __name__ == "__main__":
    main()
