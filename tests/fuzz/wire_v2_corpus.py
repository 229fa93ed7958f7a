#!/usr/bin/env python3
"""Writes the version 2 seed files of tests/fuzz/corpus/wire (and one of
tests/fuzz/corpus/edge_result) from docs/protocol.md's tables alone (struct
+ zlib, not the C encoder), so that test_net_wire's corpus check compares
two implementations of the spec:

    python3 tests/fuzz/wire_v2_corpus.py tests/fuzz/corpus

valid_* must decode and re-encode to the same bytes; bad_* must be refused.
"""
import struct
import sys
import zlib
from pathlib import Path

MAGIC = b"HSDW"


def message(version, mtype, request_id, payload):
    head = struct.pack("<4sHHHHIQII", MAGIC, version, mtype, 0, 0, len(payload), request_id, 0, 0)
    msg = bytearray(head + payload)
    struct.pack_into("<I", msg, 24, zlib.crc32(bytes(msg)) & 0xFFFFFFFF)  # checksum field is 0
    return bytes(msg)


def text(s):
    b = s.encode()
    return struct.pack("<BI", 0, len(b)) + b


def generate_v2(orig=(1024, 768), crop=(32, 16), edge=(2048, 1280)):
    # §5.1: 32 fixed bytes, then original_width/height, crop_top/left,
    # edge_ctx_c, edge_pooled_c (u16 each), then model, prompts.
    fixed = struct.pack("<QHHHHHBBfIBBH", 1234, 1024, 1024, 25, 10, 10, 2, 1, 5.0, 0, 0, 0, 0)
    v2 = struct.pack("<6H", orig[0], orig[1], crop[0], crop[1], edge[0], edge[1])
    return fixed + v2 + struct.pack("<H", 0) + text("an astronaut riding a horse") + text("")


def result_v2(time_id=768.0):
    # §5.2: 32 fixed bytes + pooled_c, n_time_ids; latent [4, 2, 2]; opaque
    # state; embeddings [2, 77, 4]; pooled [2, 3]; time ids [2, 6].
    c, h, w, emb_t, emb_c, pooled_c = 4, 2, 2, 77, 4, 3
    fixed = struct.pack("<HHBBHHHHHdd", 25, 10, 2, 2, c, h, w, emb_t, emb_c, 12.5, 0.5)
    fixed += struct.pack("<HH", pooled_c, 6)
    latent = struct.pack(f"<{c * h * w}f", *[0.25 * i for i in range(c * h * w)])
    state = b"opaque-state"
    emb = struct.pack(f"<{2 * emb_t * emb_c}f", *[(i % 7) * 0.125 for i in range(2 * emb_t * emb_c)])
    pooled = struct.pack("<6f", 0.5, -0.5, 1.0, 0.0, 2.0, -2.0)
    ids = struct.pack("<12f", *([16.0, 16.0, 0.0, 0.0, 16.0, time_id] * 2))
    return fixed + latent + struct.pack("<I", len(state)) + state + emb + pooled + ids


def result_to_v2(v1, pooled_c=8, ids=None, n_ids=6, pooled=None):
    """A version 1 RESULT (a real one: its sampler state verifies) made
    version 2 with pooled embeddings and time ids: by default the ones
    fuzz_edge_result's request implies (no original size or crop: (8h, 8w,
    0, 0, 8h, 8w)). tests/pyclient/test_wire.py passes other `ids`,
    `n_ids` (the header's n_time_ids; one pass's ids, written once per
    pass) and `pooled` values (all passes') to build broken ones."""
    rid = struct.unpack_from("<Q", v1, 16)[0]
    payload = v1[32:]
    n_emb = payload[5]
    h, w = struct.unpack_from("<HH", payload, 8)
    if ids is None:
        ids = [8.0 * h, 8.0 * w, 0.0, 0.0, 8.0 * h, 8.0 * w]
    if pooled is None:
        pooled = [0.5 - 0.125 * i for i in range(n_emb * pooled_c)]
    pooled = struct.pack(f"<{len(pooled)}f", *pooled)
    body = payload[:32] + struct.pack("<HH", pooled_c, n_ids) + payload[32:] + pooled
    return message(2, 2, rid, body + struct.pack(f"<{len(ids) * n_emb}f", *(list(ids) * n_emb)))


def main(corpus):
    corpus = Path(corpus)
    out = corpus / "wire"
    edge = corpus / "edge_result"
    (edge / "real_result_v2_sdxl").write_bytes(result_to_v2((edge / "real_result_0").read_bytes()))
    files = {
        "valid_generate_v2_sdxl": message(2, 1, 11, generate_v2()),
        "valid_result_v2_sdxl": message(2, 2, 11, result_v2()),
        "bad_result_v2_time_id_negative": message(2, 2, 11, result_v2(-1.0)),
        "bad_generate_v2_pooled_without_ctx": message(2, 1, 12, generate_v2(edge=(0, 1280))),
        # A version this build does not speak (3): BAD_VERSION.
        "bad_version": message(3, 1, 13, generate_v2()),
    }
    for name, data in files.items():
        (out / name).write_bytes(data)


if __name__ == "__main__":
    main(sys.argv[1])
