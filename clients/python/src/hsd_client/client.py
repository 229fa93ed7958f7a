"""An edge client of `hsd serve` over pynng (nng's SP implementation,
wire-compatible with nanomsg's REQ/REP; docs/protocol.md §1).

One fresh REQ socket per request, as `hsd edge` does (host/edge/
edge_client.c): a REQ socket resends an unanswered request with the same
bytes, which the service refuses as REPLAYED, so the socket's own resend
timer is switched off and a retry is a new, newly signed request.
"""

from __future__ import annotations

import os
import struct
from typing import Optional

import numpy as np
import pynng

from . import auth, wire
from .errors import InvalidRequest, NoReply, ServerError, TransportError, VerificationError
from .replies import CancelAck, Error, Reply, Result, Status, decode_reply
from .sampler_state import SamplerState, decode_sampler_state

# nng's default receive limit is 1 MiB; a RESULT at 1024 px with text
# embeddings is larger, and §1 says both sides accept 64 MiB.
RECV_MAX = wire.MAX_MESSAGE
# nng's REQ resends after 60 s by default; -1 (NNG_DURATION_INFINITE) never.
_NO_RESEND = -1


def random_request_id() -> int:
    """64 random bits, never 0 (§1: clients pick request ids at random)."""
    while True:
        (rid,) = struct.unpack("<Q", os.urandom(8))
        if rid:
            return rid


class Client:
    """Talks to one service endpoint ("tcp://host:port" or "ipc:///path").

    ``key``: an auth.Key (or None for a service run with --no-auth);
    ``timeout_ms``: how long one request waits for its reply; ``version``:
    the protocol version requests are sent in (docs/protocol.md §6): 2,
    which `hsd serve` reads for every model; 1 for a service from before
    version 2 (it answers version 2 with BAD_VERSION), SD 1.x/2.x only.
    """

    def __init__(self, endpoint: str, key: Optional[auth.Key] = None, timeout_ms: int = 60000,
                 version: int = wire.VERSION):
        _check_endpoint(endpoint)
        wire.check_version(version)
        if key is not None and not isinstance(key, auth.Key):
            raise InvalidRequest("key must be an hsd_client.Key or None")
        if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, int) or \
                not 0 < timeout_ms < 2**31:
            raise InvalidRequest(f"timeout_ms must be a positive integer (ms), got {timeout_ms!r}")
        self.endpoint, self.key, self.timeout_ms = endpoint, key, timeout_ms
        self.version = version

    # ---- raw exchange ----

    def exchange(self, msg: bytes) -> Reply:
        """Sends one encoded message as it is and returns the decoded reply
        (any type, ERROR included; nothing is raised for an ERROR)."""
        return decode_reply(self.exchange_raw(msg))

    def exchange_raw(self, msg: bytes) -> bytes:
        """Sends one encoded message as it is; the reply's bytes, unchecked."""
        with pynng.Req0(recv_max_size=RECV_MAX, resend_time=_NO_RESEND,
                        recv_timeout=self.timeout_ms, send_timeout=self.timeout_ms) as s:
            try:
                # Non-blocking dial: nng connects (and reconnects) in the
                # background, like nanomsg's nn_connect; the send waits for it.
                s.dial(self.endpoint, block=False)
                s.send(bytes(msg))
                raw = s.recv()
            except pynng.Timeout:
                raise NoReply(f"no reply from {self.endpoint} within {self.timeout_ms} ms") \
                    from None
            except pynng.NNGException as e:
                raise TransportError(f"{self.endpoint}: {e}") from e
        return raw

    def _signed(self, msg: bytearray) -> bytes:
        if self.key is not None:
            auth.sign(msg, self.key)
        return bytes(msg)

    def _ask(self, msg: bytes, request_id: int, want: type) -> Reply:
        reply = self.exchange(msg)
        if isinstance(reply, Error):
            # §6: a service that does not speak our version says so in
            # version 1 (request id 0, so checked before the id below).
            hint = (f"this client sent protocol version {self.version}; a service that speaks "
                    "version 1 only takes Client(..., version=1), SD 1.x/2.x models only"
                    if reply.name == "BAD_VERSION" and self.version > 1 else "")
            if hint or reply.request_id == request_id:
                raise ServerError(reply.code, reply.name, reply.retry_after_ms, reply.text,
                                  reply.request_id, hint)
        if reply.request_id != request_id:
            raise VerificationError(f"reply to request {reply.request_id:016x}, sent "
                                    f"{request_id:016x}")
        if not isinstance(reply, want):
            raise VerificationError(f"got {type(reply).__name__} where {want.__name__} was "
                                    "expected")
        return reply

    # ---- requests ----

    def encode_generate(self, req: wire.GenerateRequest, request_id: int) -> bytes:
        """The signed GENERATE bytes this client would send."""
        return self._signed(wire.encode_generate(req, request_id, self.key is not None,
                                                 self.version))

    def generate(self, req: wire.GenerateRequest, request_id: Optional[int] = None) -> Result:
        """Asks for the first k steps of `req`; returns the verified RESULT.
        Raises InvalidRequest (before sending), ServerError (the service's
        ERROR, e.g. BUSY with retry_after_ms), NoReply, ProtocolError or
        VerificationError (a reply that is broken or answers something else)."""
        rid = random_request_id() if request_id is None else request_id
        msg = self.encode_generate(req, rid)
        res = self._ask(msg, rid, Result)
        verify_result(res, req, self.version)
        return res

    def status(self) -> Status:
        rid = random_request_id()
        return self._ask(self._signed(wire.encode_status_request(rid, self.key is not None,
                                                                 self.version)), rid, Status)

    def cancel(self, target: int) -> bool:
        """Cancels this key's GENERATE `target` (send it from another thread
        or process than the one waiting for it); True if it was cancelled."""
        rid = random_request_id()
        ack = self._ask(self._signed(wire.encode_cancel(target, rid, self.key is not None,
                                                        self.version)), rid, CancelAck)
        if ack.target != target:
            raise VerificationError(f"CANCEL_ACK for {ack.target:016x}, sent {target:016x}")
        return ack.cancelled

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _check_endpoint(ep) -> None:
    """tcp://HOST:PORT (port 1..65535) or ipc:///PATH, as `hsd serve --bind`."""
    if isinstance(ep, str) and ep.startswith("ipc://") and len(ep) > 6:
        return
    if isinstance(ep, str) and ep.startswith("tcp://"):
        host, _, port = ep[6:].rpartition(":")
        if host and port.isdigit() and 1 <= int(port) <= 65535:
            return
    raise InvalidRequest(f"endpoint {ep!r}: expected tcp://HOST:PORT or ipc:///PATH")


def verify_result(res: Result, req: wire.GenerateRequest,
                  version: int = wire.VERSION) -> SamplerState:
    """Checks that a RESULT answers `req` sent in protocol `version`
    (host/edge/edge_verify.c hsd_edge_verify_result, less what needs the
    edge's own model): the reply's version, steps, sampler, k_used within
    the split, latent h, w = height/8, width/8, embeddings as asked (two
    when CFG is on), the edge widths the request gave (edge_ctx_c,
    edge_pooled_c), time ids equal to the request's, and a sampler state
    for this request at step k_used. Returns the decoded sampler state."""
    def bad(msg: str) -> VerificationError:
        return VerificationError(f"RESULT rejected: {msg}")

    if res.version != version:  # §3: a reply is in its request's version
        raise bad(f"protocol version {res.version}, the request was sent in version {version}")
    k_min, k_max = req.split()
    sampler = wire.Sampler.parse(req.sampler)
    if res.steps != req.steps:
        raise bad(f"steps {res.steps}, the request asked for {req.steps}")
    if res.sampler != sampler:
        raise bad(f"sampler {res.sampler.cli_name}, the request asked for {sampler.cli_name}")
    if not k_min <= res.k_used <= k_max:
        raise bad(f"k_used {res.k_used} outside the requested split [{k_min}, {k_max}]")
    c, h, w = res.latent.shape
    # 8 pixels per latent cell: SD's VAE (§5.2 "h = height / 8").
    if (h, w) != (req.height // 8, req.width // 8):
        raise bad(f"latent {h}x{w} for a {req.width}x{req.height} image (expected "
                  f"{req.height // 8}x{req.width // 8})")
    cfg = req.cfg_scale > 1.0  # diffusers' do_classifier_free_guidance
    if req.return_embeddings:
        if res.embeddings is None:
            raise bad("no text embeddings (the request asked for them)")
        if cfg and res.embeddings.shape[0] != 2:
            raise bad(f"{res.embeddings.shape[0]} text embedding(s); cfg_scale {req.cfg_scale} "
                      "needs 2 (cond, uncond)")
    elif res.embeddings is not None:
        raise bad("text embeddings the request did not ask for")
    _verify_added(res, req, bad)
    st = decode_sampler_state(res.sampler_state)
    if st.kind != sampler:
        raise bad(f"sampler state is a {st.kind.cli_name} state, the request asked for "
                  f"{sampler.cli_name}")
    if st.n_steps != req.steps:
        raise bad(f"sampler state is for {st.n_steps} steps, the request asked for {req.steps}")
    if st.step != res.k_used:
        raise bad(f"sampler state is at U-Net call {st.step}, RESULT says k_used = {res.k_used}")
    if st.n_latent != c * h * w:
        raise bad(f"sampler state is for latents of {st.n_latent} elements, RESULT's latent "
                  f"has {c * h * w}")
    return st


def _verify_added(res: Result, req: wire.GenerateRequest, bad) -> None:
    """SDXL's part (version 2): the widths of the edge U-Net the request
    named, and the time ids it asked for in every pass (edge_verify.c
    check_added)."""
    if req.edge_ctx_c and res.embeddings is not None and res.embeddings.shape[2] != req.edge_ctx_c:
        raise bad(f"text embeddings {res.embeddings.shape[2]} wide, the request's edge_ctx_c is "
                  f"{req.edge_ctx_c}")
    pooled_c = 0 if res.pooled is None else res.pooled.shape[1]
    if req.edge_ctx_c and res.embeddings is not None and pooled_c != req.edge_pooled_c:
        raise bad(f"pooled_c {pooled_c}, the request's edge_pooled_c is {req.edge_pooled_c}")
    if res.time_ids is None:
        return
    want = np.array(req.time_ids(), dtype=np.float32)
    for i, row in enumerate(res.time_ids):
        if not np.array_equal(row, want):
            raise bad(f"time_ids[{i}] = {row.tolist()}, the request's are {want.tolist()} "
                      "(original size, crop, size)")
