"""Request signing (docs/protocol.md §4) and the keys file (host/net/auth.h).

mac = HMAC-SHA256(secret, M[0 .. L-32)) with the header checksum read as
zero; the MAC covers header, payload, key id, timestamp and nonce. A
sender fills key id, timestamp and nonce, computes the MAC, writes it, and
only then the checksum (wire.put_checksum).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import struct
import time
from dataclasses import dataclass, field
from typing import Optional

from . import wire
from .errors import InvalidRequest, KeyFileError

MIN_SECRET, MAX_SECRET = 32, 64  # bytes (HSD_AUTH_MIN_SECRET / MAX_SECRET)
NONCE_SIZE = 16
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,31}")
_OPTIONS = ("rate_per_min", "burst", "max_bytes", "max_pixels", "max_steps")


@dataclass(frozen=True)
class Key:
    """One client's key: its id and secret (32..64 bytes)."""
    key_id: str
    secret: bytes = field(repr=False)

    def __post_init__(self):
        if not isinstance(self.key_id, str) or not _KEY_ID.fullmatch(self.key_id):
            raise KeyFileError(f"key id {self.key_id!r} must be 1..31 characters of "
                               "[A-Za-z0-9._-]")
        if not isinstance(self.secret, (bytes, bytearray)) or \
                not MIN_SECRET <= len(self.secret) <= MAX_SECRET:
            raise KeyFileError(f"secret of key {self.key_id!r} must be {MIN_SECRET}..{MAX_SECRET} "
                               "bytes")

    @classmethod
    def from_file(cls, path: str, key_id: str) -> "Key":
        """The line of keys file `path` whose id is `key_id` (the format `hsd
        serve --keys` and `hsd edge --key-file` read)."""
        keys = load_keys(path)
        if key_id not in keys:
            raise KeyFileError(f"{path}: no key {key_id!r} (have: {', '.join(sorted(keys))})")
        return keys[key_id]


def load_keys(path: str) -> dict:
    """Parses a keys file: `key_id hex_secret [name=value ...]` per line, '#'
    comments, blank lines ignored (host/net/auth.c hsd_auth_parse). Errors
    name the file and line."""
    try:
        with open(path, "rb") as f:
            text = f.read()
    except OSError as e:
        raise KeyFileError(f"cannot open keys file {path}: {e.strerror}") from None
    keys = {}
    for n, raw in enumerate(text.split(b"\n"), 1):
        line = raw.split(b"#", 1)[0]
        if b"\0" in line:
            raise KeyFileError(f"{path}:{n}: NUL byte in a keys file")
        try:
            fields = line.decode("ascii").split()
        except UnicodeDecodeError:
            raise KeyFileError(f"{path}:{n}: keys files are ASCII") from None
        if not fields:
            continue
        if len(fields) < 2:
            raise KeyFileError(f"{path}:{n}: expected 'key_id hex_secret [name=value ...]'")
        if len(fields) > 8:
            raise KeyFileError(f"{path}:{n}: too many fields (key_id, secret, up to 6 options)")
        kid, hexs = fields[0], fields[1]
        if not _KEY_ID.fullmatch(kid):
            raise KeyFileError(f"{path}:{n}: key id {kid!r} must be 1..31 characters of "
                               "[A-Za-z0-9._-]")
        if not re.fullmatch(r"(?:[0-9A-Fa-f]{2}){%d,%d}" % (MIN_SECRET, MAX_SECRET), hexs):
            raise KeyFileError(f"{path}:{n}: secret of key {kid!r} must be {2 * MIN_SECRET}.."
                               f"{2 * MAX_SECRET} hex digits")
        for opt in fields[2:]:
            name, eq, value = opt.partition("=")
            if not eq or name not in _OPTIONS or not value.isdigit():
                raise KeyFileError(f"{path}:{n}: bad option {opt!r} (known: "
                                   f"{', '.join(_OPTIONS)}, as name=number)")
        if kid in keys:
            raise KeyFileError(f"{path}:{n}: key id {kid!r} appears twice")
        keys[kid] = Key(kid, bytes.fromhex(hexs))
    if not keys:
        raise KeyFileError(f"{path}: no keys (expected lines 'key_id hex_secret [options]')")
    return keys


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def sign(msg: bytearray, key: Key, timestamp_ms: Optional[int] = None,
         nonce: Optional[bytes] = None) -> bytearray:
    """Fills the auth block of a message framed with the AUTH flag, in place:
    key id, timestamp (default: now), nonce (default: 16 fresh bytes from the
    OS CSPRNG; never reuse one), MAC, then the checksum. Returns msg."""
    if len(msg) < wire.HEADER_SIZE + wire.AUTH_SIZE or \
            not struct.unpack_from("<H", msg, 8)[0] & wire.FLAG_AUTH:
        raise InvalidRequest("sign() needs a message framed with the AUTH flag")
    ts = now_ms() if timestamp_ms is None else timestamp_ms
    if isinstance(ts, bool) or not isinstance(ts, int) or not 0 <= ts < 2**64:
        raise InvalidRequest(f"timestamp_ms {ts!r} must be an integer in 0..2^64-1")
    nonce = os.urandom(NONCE_SIZE) if nonce is None else bytes(nonce)
    if len(nonce) != NONCE_SIZE:
        raise InvalidRequest(f"nonce must be {NONCE_SIZE} bytes, got {len(nonce)}")
    a = len(msg) - wire.AUTH_SIZE
    msg[a:a + 32] = key.key_id.encode("ascii").ljust(32, b"\0")
    struct.pack_into("<Q", msg, a + 32, ts)
    msg[a + 40:a + 56] = nonce
    covered = bytearray(msg[:-32])
    covered[wire.CHECKSUM_OFFSET:wire.CHECKSUM_OFFSET + 4] = b"\0\0\0\0"
    msg[-32:] = hmac.new(key.secret, bytes(covered), hashlib.sha256).digest()
    wire.put_checksum(msg)
    return msg
