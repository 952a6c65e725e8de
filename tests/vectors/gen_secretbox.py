#!/usr/bin/env python3
"""Known-answer vectors for crypto_secretbox (XSalsa20-Poly1305), made with libsodium.

Run once (`pip install pynacl`, then `python3 tests/vectors/gen_secretbox.py > tests/vectors/secretbox.txt`);
the output is committed and checked by tests/secretbox_vectors.rs, so the tests need neither
Python nor libsodium. Inputs come from a fixed-seed generator, so rerunning this script yields
the same file: anyone can confirm the vectors came from libsodium.

Format: one vector per line, `key nonce message box`, hex; `box` is crypto_secretbox_easy's
output, tag (16 bytes) then ciphertext, and `-` stands for an empty message.
"""
import hashlib

import nacl.bindings as sodium

LENGTHS = [0, 1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 1000, 1419, 1500, 4096]


def stream(label: bytes, n: int) -> bytes:
    """Deterministic bytes: SHA-256 in counter mode over a label."""
    out = b""
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(label + counter.to_bytes(8, "big")).digest()
        counter += 1
    return out[:n]


def main() -> None:
    import nacl

    print(f"# crypto_secretbox_easy vectors from libsodium via PyNaCl {nacl.__version__}")
    print("# key nonce message box(tag||ciphertext), hex; '-' = empty")
    for i, n in enumerate(LENGTHS):
        key = stream(b"key%d" % i, 32)
        nonce = stream(b"nonce%d" % i, 24)
        msg = stream(b"msg%d" % i, n)
        boxed = sodium.crypto_secretbox_easy(msg, nonce, key)
        assert sodium.crypto_secretbox_open_easy(boxed, nonce, key) == msg
        print(key.hex(), nonce.hex(), msg.hex() or "-", boxed.hex())


if __name__ == "__main__":
    main()
