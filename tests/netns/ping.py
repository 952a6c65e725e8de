#!/usr/bin/env python3
"""One ICMP echo for the mlvpn netns lab (root: raw socket), so the lab needs no iputils-ping.

    ping.py DEST_IP TIMEOUT_SECONDS       exit 0 if DEST_IP answered in time, 1 otherwise
"""

import os
import select
import socket
import struct
import sys
import time


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def ping(dest, timeout):
    ident = os.getpid() & 0xFFFF
    payload = b"mlvpn-netns-lab"
    header = struct.pack("!BBHHH", 8, 0, 0, ident, 1)
    packet = struct.pack("!BBHHH", 8, 0, checksum(header + payload), ident, 1) + payload
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as s:
        s.sendto(packet, (dest, 0))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([s], [], [], left)[0]:
                return False
            data, addr = s.recvfrom(2048)
            icmp = data[(data[0] & 0x0F) * 4 :]
            if addr[0] == dest and len(icmp) >= 8:
                kind, _, _, rid, _ = struct.unpack("!BBHHH", icmp[:8])
                if kind == 0 and rid == ident:
                    return True


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(0 if ping(sys.argv[1], float(sys.argv[2])) else 1)
