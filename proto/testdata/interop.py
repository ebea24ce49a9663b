#!/usr/bin/env python3
"""Independent implementation of Tessera's envelope and commitment, with Python's `cryptography` package.

Used by proto/tests/interop.rs to prove byte compatibility in both directions:
  interop.py seal  PUBLIC_SPKI_DER_FILE  < plaintext   -> envelope JSON on stdout
  interop.py open  PRIVATE_PKCS8_DER_FILE < envelope    -> plaintext on stdout
  interop.py vectors                                     -> commitment test vectors (JSON) on stdout
"""
import base64
import hashlib
import hmac
import json
import os
import struct
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

OAEP = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
DOMAIN_TAG = b"tessera/credential-commitment/v1\x00"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def seal(spki_path: str) -> None:
    public = serialization.load_der_public_key(open(spki_path, "rb").read())
    plaintext = sys.stdin.buffer.read()
    key = bytearray(os.urandom(32))
    iv = os.urandom(12)
    sealed = AESGCM(bytes(key)).encrypt(iv, plaintext, None)
    envelope = {
        "encrypted_key": b64(public.encrypt(bytes(key), OAEP)),
        "iv": b64(iv),
        "ciphertext": b64(sealed[:-16]),
        "tag": b64(sealed[-16:]),
    }
    key[:] = b"\x00" * 32
    json.dump(envelope, sys.stdout)


def open_envelope(pkcs8_path: str) -> None:
    private = serialization.load_der_private_key(open(pkcs8_path, "rb").read(), password=None)
    envelope = json.load(sys.stdin)
    key = private.decrypt(base64.b64decode(envelope["encrypted_key"]), OAEP)
    ciphertext = base64.b64decode(envelope["ciphertext"]) + base64.b64decode(envelope["tag"])
    sys.stdout.buffer.write(AESGCM(key).decrypt(base64.b64decode(envelope["iv"]), ciphertext, None))


def canonical(value) -> bytes:
    # RFC 8785 for documents without floating-point numbers: sorted keys, no whitespace, UTF-8, minimal escapes.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def commitment(salt: bytes, credential_id: str, version: int, canonical_plaintext: bytes) -> bytes:
    msg = DOMAIN_TAG + struct.pack(">H", len(credential_id)) + credential_id.encode("ascii")
    msg += struct.pack(">Q", version) + canonical_plaintext
    return hmac.new(salt, msg, hashlib.sha256).digest()


def vectors() -> None:
    cases = [
        (bytes(range(32)), "3f2504e0-4f89-41d3-9a0c-0305e82c3301", 1, {"secret": "hunter2"}),
        (bytes([0xFF] * 32), "3f2504e0-4f89-41d3-9a0c-0305e82c3301", 2, {"secret": "hunter2"}),
        (bytes(32), "00000000-0000-4000-8000-000000000000", 1,
         {"username": "admin", "password": "p@ss wörd", "port": 22, "tags": ["core", "dc-1"]}),
        (hashlib.sha256(b"salt").digest(), "c0ffee00-1234-4abc-8def-0123456789ab", 18446744073709551615,
         {"community": "public\n\"quoted\"", "nested": {"z": None, "a": True}}),
    ]
    out = []
    for salt, cid, version, payload in cases:
        c = canonical(payload)
        out.append({
            "salt_hex": salt.hex(),
            "credential_id": cid,
            "version": version,
            "payload": json.dumps(payload, indent=1),
            "canonical": c.decode("utf-8"),
            "commitment_hex": commitment(salt, cid, version, c).hex(),
        })
    json.dump({"domain_tag": DOMAIN_TAG.decode("ascii").rstrip("\x00") + "\\0", "vectors": out}, sys.stdout,
              indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "seal" and len(sys.argv) == 3:
        seal(sys.argv[2])
    elif command == "open" and len(sys.argv) == 3:
        open_envelope(sys.argv[2])
    elif command == "vectors":
        vectors()
    else:
        sys.exit(__doc__)
