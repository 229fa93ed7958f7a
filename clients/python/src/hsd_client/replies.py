"""Decoding of the service's replies (docs/protocol.md §5.2, 5.3, 5.5, 5.7)
into Python objects and numpy arrays.

Strict like host/net/wire_msg.c: every length, range and float is checked,
bytes left over are an error, and the code of a failure is the one §3's
table names (structure: BAD_MESSAGE; a value out of range: BAD_REQUEST).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import List, Optional, Union

import numpy as np

from .errors import ProtocolError
from .wire import (ErrorCode, Frame, MsgType, decode_frame, error_name, MAX_EMB_C, MAX_MICRO,
                   MAX_POOLED_C, MAX_STEPS, MAX_TEXT_CHUNKS, N_TIME_IDS, TEXT_LEN, Sampler)

MAX_RETRY_MS = 3_600_000
MAX_ERROR_TEXT = 1024
MAX_SHORT_TEXT = 64
MAX_DEVICES = 32
MAX_LATENT_C, MAX_LATENT_SIDE = 16, 512


@dataclass
class Result:
    """§5.2 RESULT. ``latent``: float32 [c, h, w] (x_k); ``embeddings``:
    float32 [n_emb, 77, emb_c] ([0] cond, [1] uncond) or None;
    ``sampler_state``: the opaque bytes (decode with
    sampler_state.decode_sampler_state). Version 2 from an SDXL service:
    ``pooled`` float32 [n_emb, pooled_c] (text_encoder_2's text_embeds)
    and ``time_ids`` float32 [n_emb, 6] (add_time_ids), same order as the
    embeddings; None otherwise. ``version``: the reply's protocol version."""
    request_id: int
    steps: int
    k_used: int
    sampler: Sampler
    latent: np.ndarray
    sampler_state: bytes
    embeddings: Optional[np.ndarray]
    device_ms: float
    queue_ms: float
    pooled: Optional[np.ndarray] = None
    time_ids: Optional[np.ndarray] = None
    version: int = 1


@dataclass
class Error:
    """§5.3 ERROR."""
    request_id: int
    code: int
    name: str
    retry_after_ms: int
    text: str


@dataclass
class Device:
    kind: str  # "cpu" or "cuda"
    healthy: bool
    batch: int
    mem_total_mib: int
    mem_used_mib: int
    name: str


@dataclass
class Status:
    """§5.5 STATUS."""
    request_id: int
    health: str  # "ok", "degraded", "draining"
    queue_depth: int
    queue_limit: int
    active: int
    max_batch: int
    steps_per_s: float
    uptime_ms: int
    requests_done: int
    requests_failed: int
    max_message: int
    server: str
    devices: List[Device]


@dataclass
class CancelAck:
    """§5.7 CANCEL_ACK."""
    request_id: int
    target: int
    cancelled: bool


Reply = Union[Result, Error, Status, CancelAck]


class _Reader:
    """Bounds-checked little-endian reads over one payload."""

    def __init__(self, b: bytes):
        self.b, self.off = b, 0

    def take(self, n: int, what: str) -> bytes:
        if n > len(self.b) - self.off:
            raise ProtocolError(ErrorCode.BAD_MESSAGE,
                                f"{what} needs {n} bytes, {len(self.b) - self.off} left in the "
                                "payload")
        v = self.b[self.off:self.off + n]
        self.off += n
        return v

    def unpack(self, fmt: str, what: str):
        s = struct.Struct("<" + fmt)
        return s.unpack(self.take(s.size, what))

    def text(self, len_fmt: str, what: str) -> bytes:
        """A str8/str16 field's raw bytes (checked later by _text, after the
        whole payload parsed: C checks structure first, then values)."""
        (n,) = self.unpack(len_fmt, what + " length")
        return self.take(n, what)

    def floats(self, n: int, what: str) -> np.ndarray:
        a = np.frombuffer(self.take(4 * n, what), dtype="<f4").astype(np.float32)
        if not np.isfinite(a).all():
            bad = int(np.flatnonzero(~np.isfinite(a))[0])
            raise ProtocolError(ErrorCode.BAD_REQUEST, f"{what}: element {bad} is {a[bad]}")
        return a

    def end(self, what: str) -> None:
        if self.off != len(self.b):
            raise ProtocolError(ErrorCode.BAD_MESSAGE,
                                f"{what}: {len(self.b) - self.off} bytes left over")


def _bad(msg: str) -> ProtocolError:
    return ProtocolError(ErrorCode.BAD_REQUEST, msg)


def _text(raw: bytes, limit: int, what: str) -> str:
    if len(raw) > limit:
        raise _bad(f"{what} is {len(raw)} bytes, at most {limit}")
    try:
        t = raw.decode("utf-8")  # strict RFC 3629: no overlongs, no surrogates
    except UnicodeDecodeError as e:
        raise _bad(f"{what} is not UTF-8: {e}") from None
    if "\0" in t:
        raise _bad(f"{what} contains a NUL byte")
    return t


def _result(f: Frame) -> Result:
    r = _Reader(f.payload)
    v2 = f.version >= 2
    steps, k_used, sampler, n_emb, c, h, w, emb_t, emb_c, device_ms, queue_ms, *added = r.unpack(
        "HHBBHHHHHdd" + ("HH" if v2 else ""), "RESULT fixed fields")
    pooled_c, n_ids = added if v2 else (0, 0)
    latent = r.take(4 * c * h * w, f"latent [{c}, {h}, {w}]")
    (state_len,) = r.unpack("I", "sampler state length")
    state = r.take(state_len, "sampler state")
    emb = r.take(4 * n_emb * emb_t * emb_c, f"text embeddings [{n_emb}, {emb_t}, {emb_c}]")
    # wire_msg.c parse_result: the pooled embeddings and time ids are one
    # length check.
    extra = r.take(4 * n_emb * (pooled_c + n_ids),
                   f"pooled embeddings and time ids [{n_emb}, {pooled_c} + {n_ids}]")
    r.end("RESULT")
    # Ranges, in host/net/wire_msg.c check_result's order.
    if not 1 <= steps <= MAX_STEPS:
        raise _bad(f"steps {steps} outside 1..{MAX_STEPS}")
    if k_used > steps:
        raise _bad(f"k_used {k_used} > steps {steps}")
    if sampler >= len(Sampler):
        raise _bad(f"sampler id {sampler} unknown")
    if not (1 <= c <= MAX_LATENT_C and 1 <= h <= MAX_LATENT_SIDE and 1 <= w <= MAX_LATENT_SIDE):
        raise _bad(f"latent shape [{c}, {h}, {w}] outside [1..{MAX_LATENT_C}, "
                   f"1..{MAX_LATENT_SIDE}, 1..{MAX_LATENT_SIDE}]")
    if n_emb > 2:
        raise _bad(f"{n_emb} text embeddings, 0..2 allowed")
    if n_emb == 0 and (emb_t or emb_c):
        raise _bad(f"no text embeddings but their shape is {emb_t}x{emb_c}")
    if n_emb and (not emb_t or emb_t % TEXT_LEN or emb_t > MAX_TEXT_CHUNKS * TEXT_LEN
                  or not 1 <= emb_c <= MAX_EMB_C):
        raise _bad(f"text embeddings [{n_emb}, {emb_t}, {emb_c}]: need [n, {TEXT_LEN} x "
                   f"1..{MAX_TEXT_CHUNKS}, 1..{MAX_EMB_C}]")
    for name, v in (("device_ms", device_ms), ("queue_ms", queue_ms)):
        if not (np.isfinite(v) and v >= 0):
            raise _bad(f"{name} {v} must be finite and >= 0")
    lat = _Reader(latent).floats(c * h * w, "latent").reshape(c, h, w)
    embs = _Reader(emb).floats(n_emb * emb_t * emb_c, "text embeddings").reshape(
        n_emb, emb_t, emb_c) if n_emb else None
    pooled, ids = _added(extra, n_emb, pooled_c, n_ids)
    return Result(f.request_id, steps, k_used, Sampler(sampler), lat, bytes(state), embs,
                  device_ms, queue_ms, pooled, ids, f.version)


def _added(raw: bytes, n_emb: int, pooled_c: int, n_ids: int):
    """Version 2's pooled embeddings [n_emb, pooled_c] and time ids [n_emb,
    6], checked as wire_msg.c check_result_added does: together, only with
    text embeddings, finite, time ids pixel counts 0..65535."""
    if not pooled_c and not n_ids:
        return None, None
    if not 1 <= pooled_c <= MAX_POOLED_C or n_ids != N_TIME_IDS or not n_emb:
        raise _bad(f"pooled_c {pooled_c} / n_time_ids {n_ids} / n_emb {n_emb}: need "
                   f"1..{MAX_POOLED_C} / {N_TIME_IDS} / 1..2 together")
    r = _Reader(raw)
    pooled = r.floats(n_emb * pooled_c, "pooled embeddings").reshape(n_emb, pooled_c)
    ids = r.floats(n_emb * n_ids, "time ids").reshape(n_emb, n_ids)
    out = ~((ids >= 0) & (ids <= MAX_MICRO))
    if out.any():
        i = int(np.flatnonzero(out)[0])
        raise _bad(f"time ids[{i}] = {ids.flat[i]:g} outside 0..{MAX_MICRO}")
    return pooled, ids


def _error(f: Frame) -> Error:
    r = _Reader(f.payload)
    code, reserved, retry = r.unpack("HHI", "ERROR fixed fields")
    if reserved:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "reserved field must be zero")
    raw = r.text("H", "ERROR text")
    r.end("ERROR")
    if code == 0:
        raise _bad("error code 0 (NONE) is not an error")
    if retry > MAX_RETRY_MS:
        raise _bad(f"retry hint {retry} ms > {MAX_RETRY_MS} ms")
    return Error(f.request_id, code, error_name(code), retry, _text(raw, MAX_ERROR_TEXT, "text"))


def _status(f: Frame) -> Status:
    r = _Reader(f.payload)
    (health, n_dev, reserved, depth, limit, active, max_batch, sps, uptime, done, failed,
     max_msg) = r.unpack("BBHIIIIfQQQI", "STATUS fixed fields")
    if reserved:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "reserved field must be zero")
    server = r.text("B", "server name")
    if n_dev > MAX_DEVICES:
        raise _bad(f"{n_dev} devices, at most {MAX_DEVICES}")
    raw_devices = [r.unpack("BBHII", "device entry") + (r.text("B", "device name"),)
                   for _ in range(n_dev)]
    r.end("STATUS")
    # Values, in host/net/wire_msg.c check_status's order.
    if health > 2:
        raise _bad(f"health {health} unknown")
    if not (np.isfinite(sps) and sps >= 0):
        raise _bad(f"steps/s {sps} must be finite and >= 0")
    server = _text(server, MAX_SHORT_TEXT, "server name")
    devices = []
    for i, (kind, healthy, batch, total, used, name) in enumerate(raw_devices):
        if kind > 1 or healthy > 1:
            raise _bad(f"device {i}: kind {kind} / healthy {healthy} unknown")
        if used > total:
            raise _bad(f"device {i}: {used} MiB used of {total}")
        devices.append(Device(("cpu", "cuda")[kind], bool(healthy), batch, total, used,
                              _text(name, MAX_SHORT_TEXT, "device name")))
    return Status(f.request_id, ("ok", "degraded", "draining")[health], depth, limit, active,
                  max_batch, sps, uptime, done, failed, max_msg, server, devices)


def _cancel_ack(f: Frame) -> CancelAck:
    r = _Reader(f.payload)
    target, cancelled = r.unpack("QB", "CANCEL_ACK")
    r.end("CANCEL_ACK")
    if cancelled > 1:
        raise _bad(f"cancelled flag {cancelled} (0 or 1)")
    return CancelAck(f.request_id, target, bool(cancelled))


_DECODERS = {MsgType.RESULT: _result, MsgType.ERROR: _error, MsgType.STATUS: _status,
             MsgType.CANCEL_ACK: _cancel_ack}


def decode_reply(buf: bytes) -> Reply:
    """A reply message as RESULT / ERROR / STATUS / CANCEL_ACK object.
    Raises ProtocolError for anything §3 or §5 refuses, or for a request
    type (a service never sends one). Replies carry no auth block (§4);
    one that has it is decoded and its block ignored, as nothing in it can
    be checked. Versions 1 and 2 are read (§6)."""
    f = decode_frame(buf)
    if f.auth is not None:
        _check_auth_shape(f.auth)
    dec = _DECODERS.get(MsgType(f.type))
    if dec is None:
        raise ProtocolError(ErrorCode.BAD_MESSAGE,
                            f"got a {MsgType(f.type).name} request where a reply was expected")
    return dec(f)


def _check_auth_shape(a: bytes) -> None:
    kid = a[:32].rstrip(b"\0")
    if b"\0" in kid or not kid or len(kid) > 31 or any(
            chr(ch) not in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"
            for ch in kid):
        raise ProtocolError(ErrorCode.BAD_MESSAGE,
                            "auth key id must be 1..31 characters of [A-Za-z0-9._-]")
