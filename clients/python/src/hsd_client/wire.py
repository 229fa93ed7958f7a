"""Framing and request encoding of the hsd wire protocol, versions 1 and 2.

docs/protocol.md is the contract (this module follows it section by
section); the C side is host/net/wire.c and wire_msg.c. The encoding is
canonical: the bytes built here are the bytes hsd_wire_encode() builds from
the same fields, which the tests check against the C encoder.

    [header 32 B][payload][auth block 88 B, iff flag AUTH]
"""

from __future__ import annotations

import enum
import math
import numbers
import struct
import zlib
from dataclasses import dataclass
from typing import Optional, Sequence, Union

from .errors import InvalidRequest, ProtocolError

MAGIC = b"HSDW"
# §6: version 2 (SDXL: original size, crop and the edge U-Net's widths in
# GENERATE; pooled embeddings and time ids in RESULT) is what this client
# sends; replies are read in either version (a service answers what it
# cannot read, BAD_VERSION included, in version 1).
VERSION = 2
VERSIONS = (1, 2)
HEADER_SIZE = 32
AUTH_SIZE = 88
CHECKSUM_OFFSET = 24
FLAG_AUTH = 0x0001
FLAGS_CRITICAL = 0x00FF
MAX_MESSAGE = 64 << 20  # §1: NN_RCVMAXSIZE on both sides

# §7 limits (host/net/wire.h)
MAX_PROMPT_BYTES = 16384
MAX_TOKENS = 77
MAX_TOKEN_ID = 0xFFFFFF
MAX_NAME = 255
MIN_SIDE, MAX_SIDE = 64, 4096
MAX_STEPS = 1000
MAX_CFG = 100.0
MAX_DEADLINE_MS = 3_600_000
MAX_CLIP_SKIP = 23
MAX_PRIORITY = 7
TEXT_LEN = 77
GEN_TEXT_EMB = 0x01
GEN_A1111 = 0x02  # prompts in AUTOMATIC1111 style: 75-token chunks, (text:1.2) emphasis
GEN_LORAS = 0x04  # a LoRA list follows the negative prompt
MAX_TEXT_CHUNKS = 8  # RESULT embeddings: TEXT_LEN x 1..8 tokens
MAX_LORAS = 8
MAX_LORA_NAME = 63
MAX_LORA_SCALE = 16.0
MAX_MICRO = 65535  # v2: original size, crop (pixels); RESULT time ids
MAX_EMB_C = 4096  # RESULT text embedding width; v2 GENERATE edge_ctx_c
MAX_POOLED_C = 4096  # v2: RESULT pooled width; GENERATE edge_pooled_c
N_TIME_IDS = 6  # v2: SDXL's add_time_ids per pass

_HEADER = struct.Struct("<4sHHHHIQII")
_GEN_FIXED = struct.Struct("<QHHHHHBBfIBBH")
_GEN_V2 = struct.Struct("<6H")  # original w, h, crop top, left, edge_ctx_c, edge_pooled_c


class MsgType(enum.IntEnum):
    """§5 message types."""
    GENERATE = 1
    RESULT = 2
    ERROR = 3
    STATUS_REQUEST = 4
    STATUS = 5
    CANCEL = 6
    CANCEL_ACK = 7


class ErrorCode(enum.IntEnum):
    """§5.3 ERROR codes (append-only in the protocol)."""
    BAD_MESSAGE = 1
    BAD_VERSION = 2
    BAD_CHECKSUM = 3
    TOO_LARGE = 4
    UNAUTHENTICATED = 5
    REPLAYED = 6
    RATE_LIMITED = 7
    BUSY = 8
    BAD_REQUEST = 9
    CANCELLED = 10
    EXPIRED = 11
    INTERNAL = 12
    SHUTTING_DOWN = 13


def error_name(code: int) -> str:
    """"REPLAYED", ...; "UNKNOWN" for a code this client does not know."""
    try:
        return ErrorCode(code).name
    except ValueError:
        return "UNKNOWN"


class Sampler(enum.IntEnum):
    """§5.1 sampler ids (= enum hsd_sampler_kind); names as `hsd --sampler`."""
    DPMPP_2M = 0
    DDIM = 1
    EULER = 2
    EULER_A = 3
    PNDM = 4
    LCM = 5

    @classmethod
    def parse(cls, v: Union[str, int, "Sampler"]) -> "Sampler":
        if isinstance(v, str):
            key = v.strip().lower().replace("-", "_").replace("+", "p")
            for s in cls:
                if s.name.lower() == key:
                    return s
            raise InvalidRequest(f"unknown sampler {v!r} (expected dpmpp-2m, ddim, euler, "
                                 "euler-a or pndm)")
        if isinstance(v, bool) or not isinstance(v, int) or v not in cls._value2member_map_:
            raise InvalidRequest(f"unknown sampler id {v!r} (0..{len(cls) - 1})")
        return cls(v)

    @property
    def cli_name(self) -> str:
        return self.name.lower().replace("_", "-")


def checksum(msg: bytes) -> int:
    """CRC-32 (zlib crc32, ISO-HDLC) of a message with its checksum field read
    as zero (§3)."""
    return zlib.crc32(msg[CHECKSUM_OFFSET + 4:],
                      zlib.crc32(b"\0\0\0\0", zlib.crc32(msg[:CHECKSUM_OFFSET])))


def put_checksum(msg: bytearray) -> None:
    struct.pack_into("<I", msg, CHECKSUM_OFFSET, checksum(msg))


def frame(msg_type: int, request_id: int, payload: bytes, with_auth: bool,
          version: int = VERSION) -> bytearray:
    """Header + payload (+ 88 zero bytes for the auth block), checksummed.
    A signed message is completed by auth.sign()."""
    _check_int("request_id", request_id, 0, 2**64 - 1)
    check_version(version)
    size = HEADER_SIZE + len(payload) + (AUTH_SIZE if with_auth else 0)
    if size > MAX_MESSAGE:
        raise InvalidRequest(f"message of {size} bytes exceeds the {MAX_MESSAGE}-byte limit")
    msg = bytearray(_HEADER.pack(MAGIC, version, msg_type, FLAG_AUTH if with_auth else 0, 0,
                                 len(payload), request_id, 0, 0))
    msg += payload
    if with_auth:
        msg += bytes(AUTH_SIZE)
    put_checksum(msg)
    return msg


@dataclass(frozen=True)
class Frame:
    """A checked frame (§3): header consistent, checksum right, known type."""
    version: int
    type: int
    flags: int
    request_id: int
    payload: bytes
    auth: Optional[bytes]


def decode_frame(buf: bytes) -> Frame:
    """Checks a message's frame in the order of §3's decoding table; raises
    ProtocolError with that table's code."""
    buf = bytes(buf)
    n = len(buf)
    if n < 4 or buf[:4] != MAGIC:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"bad magic (not an hsd message; {n} bytes)")
    if n < 6:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"truncated header: {n} of {HEADER_SIZE} bytes")
    (version,) = struct.unpack_from("<H", buf, 4)
    if version not in VERSIONS:
        raise ProtocolError(ErrorCode.BAD_VERSION,
                            f"protocol version {version}; this client speaks versions "
                            f"{VERSIONS[0]}..{VERSIONS[-1]}")
    if n < HEADER_SIZE:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"truncated header: {n} of {HEADER_SIZE} bytes")
    _, _, mtype, flags, res16, plen, rid, crc, res32 = _HEADER.unpack_from(buf)
    if res16 or res32:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "reserved header fields must be zero")
    if flags & FLAGS_CRITICAL & ~FLAG_AUTH:
        raise ProtocolError(ErrorCode.BAD_VERSION,
                            f"unknown critical flags 0x{flags & FLAGS_CRITICAL & ~FLAG_AUTH:04x}")
    has_auth = bool(flags & FLAG_AUTH)
    expect = HEADER_SIZE + plen + (AUTH_SIZE if has_auth else 0)
    if expect > MAX_MESSAGE or n > MAX_MESSAGE:
        raise ProtocolError(ErrorCode.TOO_LARGE,
                            f"message of {max(expect, n)} bytes exceeds the {MAX_MESSAGE}-byte "
                            "limit")
    if expect > n:
        raise ProtocolError(ErrorCode.BAD_MESSAGE,
                            f"payload length {plen} runs past the end: header says {expect} "
                            f"bytes, got {n}")
    if expect < n:
        raise ProtocolError(ErrorCode.BAD_MESSAGE,
                            f"length mismatch: header says {expect} bytes, got {n} (trailing "
                            "bytes)")
    want = checksum(buf)
    if crc != want:
        raise ProtocolError(ErrorCode.BAD_CHECKSUM, f"checksum 0x{crc:08x}, computed 0x{want:08x}")
    if not 1 <= mtype <= len(MsgType):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"unknown message type {mtype}")
    payload = buf[HEADER_SIZE:HEADER_SIZE + plen]
    auth = buf[HEADER_SIZE + plen:] if has_auth else None
    return Frame(version, mtype, flags, rid, payload, auth)


# ---- requests -------------------------------------------------------------

Prompt = Union[str, Sequence[int]]


@dataclass
class GenerateRequest:
    """What to ask the cloud for (§5.1). Give exactly one of ``k`` (a fixed
    split: the cloud runs the first k of ``steps``) or ``k_range`` ((k_min,
    k_max): the service may hand over earlier under load). A prompt is text
    or a list of CLIP token ids (BOS and EOS included)."""
    prompt: Prompt
    negative_prompt: Prompt = ""
    seed: int = 0
    width: int = 512
    height: int = 512
    steps: int = 25
    k: Optional[int] = None
    k_range: Optional[tuple] = None
    sampler: Union[str, int] = "dpmpp-2m"
    cfg_scale: float = 7.5
    deadline_ms: int = 0
    clip_skip: int = 0
    priority: int = 0
    model: str = ""
    return_embeddings: bool = True
    prompt_style: str = "diffusers"  # or "a1111" (text prompts only)
    # LoRAs the service registered (hsd serve --lora NAME=FILE): (name, scale)
    # pairs, or a {name: scale} dict; empty: none (and nothing extra is sent).
    loras: Union[Sequence[tuple], dict] = ()
    # Protocol version 2 (§5.1), SDXL's micro-conditioning as diffusers'
    # StableDiffusionXLPipeline takes it: original_size (height, width),
    # None = the target size; crop (top, left) = crops_coords_top_left.
    original_size: Optional[tuple] = None
    crop: tuple = (0, 0)
    # The widths of the U-Net that will finish the RESULT (its
    # cross_attention_dim; its pooled text-embedding width, SDXL-base 1280,
    # 0 for SD 1.x/2.x), so the service refuses a misfit before compute;
    # edge_ctx_c 0: not checked (then edge_pooled_c must be 0 too).
    edge_ctx_c: int = 0
    edge_pooled_c: int = 0

    def split(self) -> tuple:
        """(k_min, k_max), checked."""
        if (self.k is None) == (self.k_range is None):
            raise InvalidRequest("give exactly one of k (fixed split) and k_range (k_min, k_max)")
        if self.k is not None:
            _check_int("k", self.k, 0, MAX_STEPS)
            return self.k, self.k
        try:
            k_min, k_max = self.k_range
        except (TypeError, ValueError):
            raise InvalidRequest(f"k_range must be a pair (k_min, k_max), got {self.k_range!r}")
        _check_int("k_min", k_min, 0, MAX_STEPS)
        _check_int("k_max", k_max, 0, MAX_STEPS)
        if k_min > k_max:
            raise InvalidRequest(f"split range k_min {k_min} > k_max {k_max}")
        return k_min, k_max

    def micro(self) -> tuple:
        """(original_width, original_height, crop_top, crop_left) as the
        wire carries them (0 = default), checked."""
        size = (0, 0) if self.original_size is None else _pair("original_size",
                                                                 self.original_size)
        top, left = _pair("crop", self.crop)
        return size[1], size[0], top, left

    def time_ids(self) -> tuple:
        """SDXL's add_time_ids for this request (diffusers _get_add_time_ids:
        original_size + crops_coords_top_left + target_size, sizes as
        (height, width); host/pipeline/pipeline_sdxl.c hsd_pipeline_time_ids)."""
        ow, oh, top, left = self.micro()
        return (oh or self.height, ow or self.width, top, left, self.height, self.width)

    def payload(self, version: int = VERSION) -> bytes:
        """The GENERATE payload, after checking every field against §5.1."""
        check_version(version)
        micro = self.micro()
        _check_int("edge_ctx_c", self.edge_ctx_c, 0, MAX_EMB_C)
        _check_int("edge_pooled_c", self.edge_pooled_c, 0, MAX_POOLED_C)
        if self.edge_pooled_c and not self.edge_ctx_c:
            raise InvalidRequest(f"edge_pooled_c {self.edge_pooled_c} without edge_ctx_c (give "
                                 "both or neither)")
        if version < 2 and (any(micro) or self.edge_ctx_c):
            raise InvalidRequest("original_size, crop and edge widths need protocol version 2")
        _check_int("seed", self.seed, 0, 2**64 - 1)
        for name in ("width", "height"):
            v = getattr(self, name)
            _check_int(name, v, MIN_SIDE, MAX_SIDE)
            if v % 8:
                raise InvalidRequest(f"{name} {v}: must be a multiple of 8 in "
                                     f"{MIN_SIDE}..{MAX_SIDE} pixels")
        _check_int("steps", self.steps, 1, MAX_STEPS)
        k_min, k_max = self.split()
        if k_max > self.steps:
            raise InvalidRequest(f"split k_max {k_max} > steps {self.steps}")
        sampler = Sampler.parse(self.sampler)
        cfg = _f32("cfg_scale", self.cfg_scale)
        if not 0.0 <= cfg <= MAX_CFG:
            raise InvalidRequest(f"cfg_scale {self.cfg_scale} outside 0..{MAX_CFG:g}")
        _check_int("deadline_ms", self.deadline_ms, 0, MAX_DEADLINE_MS)
        _check_int("clip_skip", self.clip_skip, 0, MAX_CLIP_SKIP)
        _check_int("priority", self.priority, 0, MAX_PRIORITY)
        if not isinstance(self.return_embeddings, bool):
            raise InvalidRequest("return_embeddings must be True or False")
        if self.prompt_style not in ("diffusers", "a1111"):
            raise InvalidRequest(f"prompt_style {self.prompt_style!r}: diffusers or a1111")
        a1111 = self.prompt_style == "a1111"
        if a1111 and not (isinstance(self.prompt, str) and isinstance(self.negative_prompt, str)):
            raise InvalidRequest("prompt_style a1111 needs text prompts, not token ids")
        model = _utf8("model", self.model, MAX_NAME)
        loras = _loras(self.loras)
        flags = ((GEN_TEXT_EMB if self.return_embeddings else 0) | (GEN_A1111 if a1111 else 0) |
                 (GEN_LORAS if loras else 0))
        out = bytearray(_GEN_FIXED.pack(self.seed, self.width, self.height, self.steps, k_min,
                                        k_max, sampler, flags, cfg, self.deadline_ms,
                                        self.clip_skip, self.priority, 0))
        if version >= 2:
            out += _GEN_V2.pack(*micro, self.edge_ctx_c, self.edge_pooled_c)
        out += struct.pack("<H", len(model)) + model
        out += _prompt("prompt", self.prompt)
        out += _prompt("negative_prompt", self.negative_prompt)
        if loras:
            out += struct.pack("<B", len(loras))
            for name, scale in loras:
                out += struct.pack("<B", len(name)) + name + struct.pack("<f", scale)
        return bytes(out)


def _loras(loras) -> list:
    """[(utf-8 name, f32 scale)] of a GENERATE's LoRA list (§5.1), checked."""
    items = list(loras.items()) if isinstance(loras, dict) else list(loras)
    if len(items) > MAX_LORAS:
        raise InvalidRequest(f"{len(items)} LoRAs: at most {MAX_LORAS}")
    out, seen = [], set()
    for item in items:
        try:
            name, scale = item
        except (TypeError, ValueError):
            raise InvalidRequest(f"a LoRA is a (name, scale) pair, got {item!r}")
        b = _utf8("LoRA name", name, MAX_LORA_NAME)
        if not b or b in seen:
            raise InvalidRequest(f"LoRA name {name!r}: empty or listed twice")
        seen.add(b)
        f = _f32("LoRA scale", scale)
        if not -MAX_LORA_SCALE <= f <= MAX_LORA_SCALE:
            raise InvalidRequest(f"LoRA scale {scale} outside -{MAX_LORA_SCALE:g}..{MAX_LORA_SCALE:g}")
        out.append((b, f))
    return out


def encode_generate(req: GenerateRequest, request_id: int, with_auth: bool,
                    version: int = VERSION) -> bytearray:
    return frame(MsgType.GENERATE, request_id, req.payload(version), with_auth, version)


def encode_status_request(request_id: int, with_auth: bool, version: int = VERSION) -> bytearray:
    return frame(MsgType.STATUS_REQUEST, request_id, b"", with_auth, version)


def encode_cancel(target: int, request_id: int, with_auth: bool,
                  version: int = VERSION) -> bytearray:
    _check_int("target", target, 0, 2**64 - 1)
    return frame(MsgType.CANCEL, request_id, struct.pack("<Q", target), with_auth, version)


# ---- field checks ----------------------------------------------------------

def check_version(version) -> None:
    if isinstance(version, bool) or version not in VERSIONS:
        raise InvalidRequest(f"protocol version {version!r}: this client speaks "
                             f"{' and '.join(map(str, VERSIONS))}")


def _pair(name: str, v) -> tuple:
    """Two u16 pixel counts (§5.1 version 2 fields, 0..65535)."""
    try:
        a, b = v
    except (TypeError, ValueError):
        raise InvalidRequest(f"{name} must be a pair of integers, got {v!r}") from None
    _check_int(f"{name}[0]", a, 0, MAX_MICRO)
    _check_int(f"{name}[1]", b, 0, MAX_MICRO)
    return int(a), int(b)

def _check_int(name: str, v, lo: int, hi: int) -> None:
    # numbers.Integral: numpy integers (token ids from a tokenizer) count too.
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise InvalidRequest(f"{name} must be an integer, got {type(v).__name__} {v!r}")
    if not lo <= v <= hi:
        raise InvalidRequest(f"{name} {v} outside {lo}..{hi}")


def _f32(name: str, v) -> float:
    """v as the f32 the wire carries (rounded the way struct packs it)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise InvalidRequest(f"{name} must be a number, got {type(v).__name__}")
    if not math.isfinite(v) or abs(v) > 3.4e38:
        raise InvalidRequest(f"{name} {v} is not a finite f32")
    return struct.unpack("<f", struct.pack("<f", v))[0]


def _utf8(name: str, s, limit: int) -> bytes:
    if not isinstance(s, str):
        raise InvalidRequest(f"{name} must be a str, got {type(s).__name__}")
    try:
        b = s.encode("utf-8")  # strict: lone surrogates raise
    except UnicodeEncodeError as e:
        raise InvalidRequest(f"{name} is not valid UTF-8 text: {e}") from None
    if b"\0" in b:
        raise InvalidRequest(f"{name} contains a NUL character (at byte {b.index(0)})")
    if len(b) > limit:
        raise InvalidRequest(f"{name} is {len(b)} bytes of UTF-8, at most {limit} allowed")
    return b


def _prompt(name: str, p: Prompt) -> bytes:
    """§5.1 prompt field: kind u8, n u32, then text bytes or u32 ids."""
    if isinstance(p, str):
        b = _utf8(name, p, MAX_PROMPT_BYTES)
        return struct.pack("<BI", 0, len(b)) + b
    if isinstance(p, (bytes, bytearray)):
        raise InvalidRequest(f"{name}: pass text as str or token ids as a list of ints, not bytes")
    try:
        ids = list(p)
    except TypeError:
        raise InvalidRequest(f"{name} must be text or a sequence of token ids") from None
    if not 1 <= len(ids) <= MAX_TOKENS:
        raise InvalidRequest(f"{name} has {len(ids)} token ids, 1..{MAX_TOKENS} allowed")
    for i, t in enumerate(ids):
        _check_int(f"{name} token {i}", t, 0, MAX_TOKEN_ID)
    return struct.pack(f"<BI{len(ids)}I", 1, len(ids), *map(int, ids))
