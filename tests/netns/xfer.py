#!/usr/bin/env python3
"""Byte-exact TCP transfer for the mlvpn netns tests.

    xfer.py recv BIND_IP PORT TIMEOUT        prints "listening", then "<bytes> <sha256> <seconds>"
    xfer.py send DEST_IP PORT BYTES SEED TIMEOUT [CC]  prints "<bytes> <sha256> <seconds>"

The sender writes BYTES of a deterministic pseudo-random stream (Mersenne Twister seeded with
SEED, 1 MiB chunks), hashing what it writes; it then half-closes and waits until the receiver
closes, so that "done" means the receiver has read everything. The receiver hashes what it
reads until EOF. The caller compares the two lines. CC, if given and not empty, is the sender's
TCP congestion control (TCP_CONGESTION).
"""

import hashlib
import random
import socket
import sys
import time

CHUNK = 1 << 20


def recv(bind_ip, port, timeout):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((bind_ip, port))
    srv.listen(1)
    srv.settimeout(timeout)
    print("listening", flush=True)
    conn, _ = srv.accept()
    conn.settimeout(timeout)
    start = time.monotonic()
    digest = hashlib.sha256()
    total = 0
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    while True:
        n = conn.recv_into(buf)
        if n == 0:
            break
        digest.update(view[:n])
        total += n
    elapsed = time.monotonic() - start
    print(f"{total} {digest.hexdigest()} {elapsed:.3f}", flush=True)
    conn.close()
    srv.close()


def send(dest_ip, port, nbytes, seed, timeout, cc):
    rng = random.Random(seed)
    conn = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if cc:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, cc.encode())
    conn.settimeout(timeout)
    conn.connect((dest_ip, port))
    start = time.monotonic()
    digest = hashlib.sha256()
    left = nbytes
    while left > 0:
        chunk = rng.randbytes(min(CHUNK, left))
        digest.update(chunk)
        conn.sendall(chunk)
        left -= len(chunk)
    conn.shutdown(socket.SHUT_WR)
    # The receiver closes after it has read EOF: only then is the transfer complete.
    while conn.recv(4096):
        pass
    elapsed = time.monotonic() - start
    print(f"{nbytes} {digest.hexdigest()} {elapsed:.3f}", flush=True)
    conn.close()


def main(argv):
    if len(argv) == 5 and argv[1] == "recv":
        recv(argv[2], int(argv[3]), float(argv[4]))
    elif len(argv) in (7, 8) and argv[1] == "send":
        cc = argv[7] if len(argv) == 8 else ""
        send(argv[2], int(argv[3]), int(argv[4]), int(argv[5]), float(argv[6]), cc)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
