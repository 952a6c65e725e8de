#!/usr/bin/env python3
"""A VoIP-like UDP stream through the tunnel, measured packet by packet (issue 13).

    call.py recv ADDR PORT SECS                 prints "listening", then a JSON summary
    call.py send ADDR PORT PPS SIZE SECS [TOS]  prints a JSON line when done
    call.py tap SIZE SECS IFNAME...             prints "listening", then a JSON line

send: PPS packets a second of SIZE bytes each as IP packets (SIZE - 28 bytes of UDP payload),
for SECS seconds: round(PPS * SECS) packets, packet i due at start + i / PPS (a fixed schedule,
so a late wake-up does not shift the ones after it). Each datagram carries its sequence number,
the count the stream will have and its send time (time.monotonic_ns, read just before sendto);
then "end" markers. TOS sets IP_TOS, e.g. 0xb8 for DSCP EF (what a VoIP phone marks).

recv: until SECS pass or 1 s after the first end marker (whatever is later than that is lost to
a call anyway). The arrival time is the kernel's (SO_TIMESTAMPNS, so a receiver waiting for a
CPU does not inflate the delay), moved onto the monotonic clock by the offset between the two
clocks read at that moment. Both namespaces read the same host clock, so arrival - send is the
one-way delay. The summary: expected (from the datagrams: robust to a lost end marker), lost
(never arrived), late (first copy more than 150 ms after sending: ITU-T G.114), duplicated
(copies beyond the first), out_of_order, one-way delay percentiles over the first copies, and
owd_ms: the delay of every sequence number (null: lost).

tap: counts the frames this host sends on each IFNAME whose IP total length is SIZE (a kernel
filter passes only those, so the count costs nothing per bulk frame), until SECS pass or
SIGTERM. Outside the tunnel a SIZE of the stream's IP size plus the tunnel's overhead counts
the stream's datagrams on each link, copies and resends included.
"""
import ctypes
import json
import select
import signal
import socket
import struct
import sys
import time

HEADER = struct.Struct("!4sIIQ")  # magic, seq, count, send time (ns, monotonic)
MAGIC = b"call"
END = b"call-end"
LATE_MS = 150.0
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
SO_ATTACH_FILTER = 26
ETH_P_IP = 0x0800
ETH_P_ALL = 0x0003  # outgoing frames reach only the taps of every protocol
PACKET_OUTGOING = 4


def send(addr, port, pps, size, secs, tos):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if tos:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tos)
    count = round(pps * secs)
    pad = bytes(max(size - 28 - HEADER.size, 0))
    start = time.monotonic()
    behind_max = 0.0
    for seq in range(count):
        due = start + seq / pps
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        now = time.monotonic_ns()
        behind_max = max(behind_max, now / 1e9 - due)
        s.sendto(HEADER.pack(MAGIC, seq, count, now) + pad, (addr, port))
    for _ in range(5):
        s.sendto(END, (addr, port))
        time.sleep(0.05)
    print(json.dumps({"sent": count, "behind_max_ms": round(behind_max * 1e3, 3)}), flush=True)


def percentile(sorted_values, p):
    """Nearest rank, as emulated::percentile; None when empty."""
    if not sorted_values:
        return None
    rank = -(-p * len(sorted_values) // 100)
    return sorted_values[min(max(int(rank), 1), len(sorted_values)) - 1]


def recv(addr, port, secs):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    s.bind((addr, port))
    print("listening", flush=True)
    deadline = time.monotonic() + secs
    owd = {}  # seq -> one-way delay (ms) of the first copy
    count, duplicated, out_of_order, highest, lag_max = 0, 0, 0, -1, 0.0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        if not select.select([s], [], [], left)[0]:
            continue
        data, ancillary, _, _ = s.recvmsg(2048, socket.CMSG_SPACE(16))
        mono, real = time.monotonic_ns(), time.time_ns()
        if data == END:
            deadline = min(deadline, time.monotonic() + 1.0)
            continue
        if len(data) < HEADER.size or data[:4] != MAGIC:
            continue
        _, seq, count, sent = HEADER.unpack_from(data)
        arrived = mono
        for level, kind, cdata in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(cdata) >= 16:
                sec, nsec = struct.unpack("qq", cdata[:16])
                arrived = sec * 1_000_000_000 + nsec - (real - mono)
        lag_max = max(lag_max, (mono - arrived) / 1e6)
        if seq in owd:
            duplicated += 1
            continue
        if seq < highest:
            out_of_order += 1
        highest = max(highest, seq)
        owd[seq] = (arrived - sent) / 1e6
    count = max(count, highest + 1)
    delays = sorted(owd.values())
    summary = {
        "expected": count,
        "received": len(owd),
        "lost": count - len(owd),
        "late": sum(1 for d in delays if d > LATE_MS),
        "duplicated": duplicated,
        "out_of_order": out_of_order,
        "min_ms": delays[0] if delays else None,
        "p50_ms": percentile(delays, 50),
        "p95_ms": percentile(delays, 95),
        "p99_ms": percentile(delays, 99),
        "max_ms": delays[-1] if delays else None,
        "receiver_lag_max_ms": round(lag_max, 3),
        "owd_ms": [round(owd[i], 3) if i in owd else None for i in range(count)],
    }
    print(json.dumps(summary), flush=True)


def size_filter(size):
    """A classic BPF program passing IPv4 frames of IP total length `size` (Ethernet offsets)."""
    code = [
        (0x28, 0, 0, 12),  # ldh [12]: EtherType
        (0x15, 0, 3, ETH_P_IP),  # jeq IPv4, else drop
        (0x28, 0, 0, 16),  # ldh [16]: IP total length
        (0x15, 0, 1, size),  # jeq size, else drop
        (0x06, 0, 0, 0xFFFF),  # ret: pass
        (0x06, 0, 0, 0),  # ret: drop
    ]
    buf = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in code))
    return buf, struct.pack("HL", len(code), ctypes.addressof(buf))


def tap(size, secs, ifnames):
    _buf, prog = size_filter(size)  # the kernel copies the program; _buf outlives the copy
    socks = {}
    for ifname in ifnames:
        # Protocol 0 receives nothing until bound: the filter is in place before any frame.
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        s.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, prog)
        s.bind((ifname, ETH_P_ALL))
        socks[s] = ifname
    counts = {i: {"frames": 0, "bytes": 0} for i in ifnames}
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    print("listening", flush=True)
    deadline = time.monotonic() + secs
    while not stop and time.monotonic() < deadline:
        for s in select.select(list(socks), [], [], 0.2)[0]:
            frame, addr = s.recvfrom(2048)
            if addr[2] == PACKET_OUTGOING:
                c = counts[socks[s]]
                c["frames"] += 1
                c["bytes"] += len(frame)
    print(json.dumps(counts), flush=True)


def main(argv):
    if len(argv) == 5 and argv[1] == "recv":
        recv(argv[2], int(argv[3]), float(argv[4]))
    elif len(argv) in (7, 8) and argv[1] == "send":
        tos = int(argv[7], 0) if len(argv) == 8 else 0
        send(argv[2], int(argv[3]), float(argv[4]), int(argv[5]), float(argv[6]), tos)
    elif len(argv) >= 5 and argv[1] == "tap":
        tap(int(argv[2]), float(argv[3]), argv[4:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
