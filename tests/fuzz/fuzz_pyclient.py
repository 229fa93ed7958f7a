#!/usr/bin/env python3
"""Fuzz target of the Python client's parsers of untrusted bytes (the
service's replies and the sampler state inside a RESULT), with atheris
(libFuzzer for Python; same flags as the C targets). scripts/fuzz.sh runs
it on the wire, edge_result and sampler_state seed corpora:

  PYTHONPATH=clients/python/src .venv/bin/python tests/fuzz/fuzz_pyclient.py \\
      -max_total_time=60 CORPUS_DIR

The contract: any bytes either decode or raise the client's own
ProtocolError / VerificationError; any other exception is a crash. A
RESULT that decodes is then verified against the request it claims to
answer (versions 1 and 2, SDXL's time ids and widths included).
"""

import struct
import sys
import zlib

import atheris

with atheris.instrument_imports():
    import hsd_client as hc
    from hsd_client import wire


def matching_request(res):
    """The request a RESULT claims to answer (its steps, k, sampler, size,
    CFG from n_emb, version 2's time ids and widths), so verify_result's
    checks, SDXL's included, run past their first comparison. Raises
    InvalidRequest where the RESULT's fields make no valid request."""
    c, h, w = res.latent.shape
    extra = {}
    if res.time_ids is not None:
        oh, ow, top, left = (int(v) for v in res.time_ids[0][:4])
        extra = dict(original_size=(oh, ow), crop=(top, left),
                     edge_ctx_c=res.embeddings.shape[2], edge_pooled_c=res.pooled.shape[1])
    n_emb = 0 if res.embeddings is None else res.embeddings.shape[0]
    return hc.GenerateRequest(prompt="", steps=res.steps, k=res.k_used, sampler=int(res.sampler),
                              width=8 * w, height=8 * h, cfg_scale=7.5 if n_emb == 2 else 1.0,
                              return_embeddings=n_emb > 0, **extra)


def decode(msg: bytes) -> None:
    try:
        reply = hc.decode_reply(msg)
        if isinstance(reply, hc.Result):
            hc.decode_sampler_state(reply.sampler_state)
    except (hc.ProtocolError, hc.VerificationError):
        return
    if isinstance(reply, hc.Result):
        try:
            hc.verify_result(reply, matching_request(reply), reply.version)
        except (hc.InvalidRequest, hc.VerificationError):
            pass


def one_input(data: bytes) -> None:
    # As tests/fuzz/fuzz_wire.c does, so mutations get past the CRC and the
    # length check to the payload parsers: as is; checksum recomputed;
    # payload_len made consistent and the checksum recomputed.
    decode(data)
    if len(data) >= wire.HEADER_SIZE:
        m = bytearray(data)
        wire.put_checksum(m)
        decode(bytes(m))
        has_auth = struct.unpack_from("<H", m, 8)[0] & wire.FLAG_AUTH
        plen = len(m) - wire.HEADER_SIZE - (wire.AUTH_SIZE if has_auth else 0)
        if plen >= 0:
            struct.pack_into("<I", m, 12, plen)
            wire.put_checksum(m)
            decode(bytes(m))
    # The sampler state parser on its own: as is, and with its total
    # length and CRC-32 made consistent so the body parser is reached.
    states = [data]
    if len(data) >= 28:
        st = bytearray(data)
        struct.pack_into("<Q", st, 16, len(st))
        struct.pack_into("<I", st, len(st) - 4, zlib.crc32(bytes(st[:-4])))
        states.append(bytes(st))
    for st in states:
        try:
            hc.decode_sampler_state(st)
        except hc.VerificationError:
            pass


atheris.Setup(sys.argv, one_input)
atheris.Fuzz()
