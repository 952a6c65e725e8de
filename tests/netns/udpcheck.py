#!/usr/bin/env python3
"""UDP through the tunnel, checked datagram by datagram.

  udpcheck.py recv ADDR PORT SECS      prints "listening", then a JSON summary
  udpcheck.py send ADDR PORT COUNT     sends COUNT datagrams in bursts

Each datagram: 8-byte sequence number, 32-byte SHA-256 of the rest, then filler whose length
and bytes depend on the sequence number (runs of equal sizes, so the tunnel can join them, and
a short one now and then). The receiver counts datagrams whole, corrupt, duplicated.
"""
import hashlib
import json
import socket
import sys
import time


def size_of(seq):
    # Runs of 40 datagrams of one size, each run ending with a shorter one.
    run, pos = divmod(seq, 40)
    full = (200, 1000, 1372, 64)[run % 4]
    return full // 2 if pos == 39 else full


def make(seq):
    n = max(size_of(seq), 48)
    body = bytes((seq * 31 + i) & 0xFF for i in range(n - 40))
    return seq.to_bytes(8, "big") + hashlib.sha256(body).digest() + body


def main():
    mode, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "recv":
        secs = float(sys.argv[4])
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            # SO_RCVBUFFORCE (root): past net.core.rmem_max, so a burst waits for us.
            s.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)
        except OSError:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
        s.bind((addr, port))
        s.settimeout(0.5)
        print("listening", flush=True)
        seen, corrupt, dup = set(), 0, 0
        deadline = time.time() + secs
        while time.time() < deadline:
            try:
                d = s.recv(65536)
            except socket.timeout:
                continue
            if d == b"end":
                break
            seq = int.from_bytes(d[:8], "big")
            intact = len(d) == max(size_of(seq), 48) and hashlib.sha256(d[40:]).digest() == d[8:40]
            if not intact:
                corrupt += 1
            elif seq in seen:
                dup += 1
            else:
                seen.add(seq)
        print(json.dumps({"whole": len(seen), "corrupt": corrupt, "duplicate": dup}), flush=True)
    else:
        count = int(sys.argv[4])
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for seq in range(count):
            s.sendto(make(seq), (addr, port))
            if seq % 200 == 199:
                time.sleep(0.002)
        for _ in range(5):
            time.sleep(0.2)
            s.sendto(b"end", (addr, port))


main()
