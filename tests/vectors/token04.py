#!/usr/bin/env python3
"""An independent implementation of the token04 format, for test vectors.

Written from the format's public description, not from roomcam's Rust code:
  "04" + base64(i64 BE expire | u16 BE nonce length | nonce | u16 BE ciphertext length
                | ciphertext [| u8 mode])
key = the 32 ASCII bytes of the server secret; mode 1 = AES-256-GCM (12-byte nonce, tag appended);
no mode byte = AES-256-CBC, PKCS#7, 16-character IV.

  token04.py mint  JSON   -> prints a token; JSON = {secret, mode: "gcm"|"cbc", app_id, user_id,
                             nonce, ctime, expire, payload (object or string)}
  token04.py decode JSON  -> prints the decrypted plaintext JSON; JSON = {secret, token}
"""
import base64
import json
import os
import random
import string
import struct
import sys

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def mint(spec):
    key = spec["secret"].encode("ascii")
    assert len(key) == 32
    payload = spec.get("payload", "")
    if not isinstance(payload, str):
        payload = json.dumps(payload)
    plain = json.dumps({
        "app_id": spec["app_id"],
        "user_id": spec["user_id"],
        "nonce": spec["nonce"],
        "ctime": spec["ctime"],
        "expire": spec["expire"],
        "payload": payload,
    }).encode()
    if spec.get("mode", "gcm") == "gcm":
        nonce = os.urandom(12)
        ct = AESGCM(key).encrypt(nonce, plain, None)
        tail = b"\x01"
    else:
        nonce = "".join(random.choice(string.ascii_letters + string.digits) for _ in range(16)).encode()
        padder = padding.PKCS7(128).padder()
        padded = padder.update(plain) + padder.finalize()
        enc = Cipher(algorithms.AES(key), modes.CBC(nonce)).encryptor()
        ct = enc.update(padded) + enc.finalize()
        tail = b""
    raw = struct.pack(">q", spec["expire"]) + struct.pack(">H", len(nonce)) + nonce \
        + struct.pack(">H", len(ct)) + ct + tail
    return "04" + base64.b64encode(raw).decode()


def decode(spec):
    key = spec["secret"].encode("ascii")
    raw = base64.b64decode(spec["token"][2:])
    off = 8
    (nlen,) = struct.unpack(">H", raw[off:off + 2]); off += 2
    nonce = raw[off:off + nlen]; off += nlen
    (clen,) = struct.unpack(">H", raw[off:off + 2]); off += 2
    ct = raw[off:off + clen]; off += clen
    rest = raw[off:]
    if rest == b"\x01":
        plain = AESGCM(key).decrypt(nonce, ct, None)
    elif rest == b"":
        dec = Cipher(algorithms.AES(key), modes.CBC(nonce)).decryptor()
        padded = dec.update(ct) + dec.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        plain = unpadder.update(padded) + unpadder.finalize()
    else:
        raise SystemExit("unknown mode byte")
    return json.loads(plain)


if __name__ == "__main__":
    cmd, arg = sys.argv[1], json.loads(sys.argv[2])
    if cmd == "mint":
        print(mint(arg))
    elif cmd == "decode":
        print(json.dumps(decode(arg)))
    else:
        raise SystemExit("usage: token04.py mint|decode JSON")
