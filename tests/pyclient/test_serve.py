#!/usr/bin/env python3
"""The Python client (pynng) against a real `hsd serve` on 127.0.0.1:

- STATUS, signed, decodes;
- GENERATE: the RESULT verifies, and its latent, text embeddings and
  sampler state are bitwise equal to hsd_edge_reference_result's for the
  same request (wire_tool reference: the single-request run that `hsd
  generate --split k` makes and that `hsd edge` finishes). Bitwise because
  each request runs alone on the same CPU backend, model and thread count,
  which tests/unit/test_service.c shows to be bit-exact; batched with
  others it would not be (OpenBLAS picks GEMM kernels by batch size);
- end to end: a RESULT the Python client received, finished by the C edge
  (hsd_edge_verify_result + hsd_edge_finish on the edge model, wire_tool
  finish), gives the pixels of `hsd generate --edge-model EDGE --split k`
  (test_edge_pngcmp: pixels and IDAT bytes equal, as tests/cli/
  edge_vs_generate.sh checks for `hsd edge`);
- a flipped byte is refused with BAD_CHECKSUM, with the checksum fixed
  with UNAUTHENTICATED (MAC), the same signed bytes sent twice with
  REPLAYED, a wrong secret, a missing signature and a bad field with their
  codes; a CANCEL from a second client stops a running GENERATE; with no
  service, NoReply after the timeout.

  test_serve.py HSD WIRE_TOOL TEST_DATA PNGCMP
"""

import os
import subprocess
import sys
import tempfile
import threading
import time

try:
    import numpy as np
    import hsd_client as hc
    from hsd_client import wire
except ImportError as e:
    print(f"SKIP: {e} (scripts/setup.sh installs tests/oracle/requirements.txt)")
    sys.exit(77)

from harness import Report, Serve, finish_vs_generate, free_port

hsd, tool, data, pngcmp = sys.argv[1:5]
model = os.path.join(data, "pipeline", "large")
edge = os.path.join(data, "pipeline", "edge")
tmp = tempfile.TemporaryDirectory()
report = Report()
ok, bad, check = report.ok, report.bad, report.check


def reference(req, rid):
    """The RESULT the C reference computes for this request."""
    gen = os.path.join(tmp.name, "gen.bin")
    out = os.path.join(tmp.name, "ref.bin")
    with open(gen, "wb") as f:
        f.write(wire.encode_generate(req, rid, False))
    subprocess.run([tool, "reference", model, gen, out], check=True, timeout=120,
                   env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    return hc.decode_reply(open(out, "rb").read())


def finish_like_generate(client, name, req):
    """The RESULT as received, finished by the C edge == hsd generate --split k."""
    msg = client.encode_generate(req, hc.random_request_id())
    same, detail = finish_vs_generate(tmp.name, hsd, tool, pngcmp, model, edge, msg,
                                      client.exchange_raw(msg), req)
    check(same, f"{name}: pynng RESULT finished by the C edge == hsd generate "
          f"--edge-model EDGE --split {req.k}: {detail}", detail)


keys = os.path.join(tmp.name, "keys")
secret = os.urandom(32)
with open(keys, "w") as f:
    # edge-1 overrides the default max_steps (150, docs/protocol.md §4
    # "Default limits") for the 1000-step CANCEL check; edge-2 has the
    # defaults, which refuse that request.
    f.write(f"edge-1 {secret.hex()} max_steps=1000\nedge-2 {os.urandom(48).hex()}\n")
os.chmod(keys, 0o600)
key = hc.Key.from_file(keys, "edge-1")

with Serve(hsd, model, ["--keys", keys]) as srv:
    ep = srv.endpoint
    client = hc.Client(ep, key, timeout_ms=60000)

    st = client.status()
    check(st.health == "ok" and st.server.startswith("hsd") and len(st.devices) >= 1 and
          st.devices[0].kind == "cpu" and
          # the service's receive limit: the largest legal request (a few
          # tens of KiB, docs/protocol.md §8), never above a client's limit
          1024 <= st.max_message <= wire.MAX_MESSAGE,
          f"STATUS: {st.health}, {st.server!r}, {len(st.devices)} device(s) "
          f"({st.devices[0].name if st.devices else '-'}), queue {st.queue_depth}/{st.queue_limit}",
          st)

    R = hc.GenerateRequest
    # The tiny model's own vocabulary (1014 ids): hsd tokenize's ids.
    ids = [int(t) for t in subprocess.run(
        [hsd, "tokenize", "--tokenizer", model, "--max-len", "77", "a red fox"],
        capture_output=True, text=True, check=True, timeout=30).stdout.split()]
    for name, req in {
            "dpmpp-2m k=3 of 6, CFG": R(prompt="a lighthouse at dusk", negative_prompt="blurry",
                                        seed=11, width=64, height=64, steps=6, k=3),
            "euler-a k=2 of 5": R(prompt="a red fox", seed=7, width=64, height=64, steps=5, k=2,
                                  sampler="euler-a"),
            "ddim k=2 of 4, CFG off": R(prompt="a cat", seed=5, width=128, height=64, steps=4,
                                        k=2, sampler="ddim", cfg_scale=1.0),
            "pndm k=N": R(prompt="a red fox", seed=3, width=64, height=64, steps=4, k=4,
                          sampler="pndm"),
            "pndm k=N, prompt as token ids (hsd tokenize)": R(
                prompt=ids, seed=3, width=64, height=64, steps=4, k=4, sampler="pndm")}.items():
        rid = hc.random_request_id()
        t0 = time.monotonic()
        res = client.generate(req, request_id=rid)  # verify_result ran inside
        ms = (time.monotonic() - t0) * 1e3
        # The C reference takes text prompts: token ids are compared with
        # the run of the text they came from.
        ref = reference(req if isinstance(req.prompt, str) else
                        R(**{**req.__dict__, "prompt": "a red fox"}), rid)
        same = (np.array_equal(res.latent, ref.latent) and
                np.array_equal(res.embeddings, ref.embeddings) and
                res.sampler_state == ref.sampler_state and res.k_used == ref.k_used)
        worst = float(np.abs(res.latent - ref.latent).max()) if \
            res.latent.shape == ref.latent.shape else float("nan")
        check(same, f"{name}: verified RESULT in {ms:.0f} ms (k_used {res.k_used}, latent "
              f"{res.latent.shape}, embeddings {res.embeddings.shape}, device {res.device_ms:.0f} "
              f"ms); latent, embeddings and sampler state bitwise equal to the C reference",
              f"worst latent difference {worst:g}")

        if isinstance(req.prompt, str):
            finish_like_generate(client, name, req)

    req = R(prompt="a lighthouse", seed=1, width=64, height=64, steps=3, k=1)
    msg = client.encode_generate(req, hc.random_request_id())
    t = bytearray(msg)
    t[32] ^= 0x01  # the seed: still a valid request, so only the MAC can tell
    r = client.exchange(bytes(t))
    check(isinstance(r, hc.Error) and r.name == "BAD_CHECKSUM",
          "flipped byte: refused BAD_CHECKSUM", r)
    wire.put_checksum(t)
    r = client.exchange(bytes(t))
    check(isinstance(r, hc.Error) and r.name == "UNAUTHENTICATED",
          f"flipped byte, checksum fixed: refused UNAUTHENTICATED ({getattr(r, 'text', '')})", r)
    r = client.exchange(msg)
    check(isinstance(r, hc.Result), "the untampered original: RESULT", r)
    r = client.exchange(msg)
    check(isinstance(r, hc.Error) and r.name == "REPLAYED",
          f"the same signed bytes again: refused REPLAYED ({getattr(r, 'text', '')})", r)

    def expect_error(what, want, fn):
        try:
            got = fn()
            bad(f"{what}: accepted ({got})")
        except hc.ServerError as e:
            check(e.name == want and e.code == int(hc.ErrorCode[want]), f"{what}: {e}",
                  f"wanted {want}")

    wrong = hc.Client(ep, hc.Key("edge-1", os.urandom(32)), timeout_ms=20000)
    expect_error("wrong secret", "UNAUTHENTICATED", lambda: wrong.generate(req))
    unsigned = hc.Client(ep, None, timeout_ms=20000)
    expect_error("unsigned STATUS to a service with keys", "UNAUTHENTICATED", unsigned.status)
    expect_error("clip skip deeper than the text encoder", "BAD_REQUEST",
                 lambda: client.generate(R(prompt="a", width=64, height=64, steps=2, k=1,
                                           clip_skip=20)))
    other = hc.Client(ep, hc.Key.from_file(keys, "edge-2"), timeout_ms=20000)
    res = other.generate(R(prompt="a", width=64, height=64, steps=2, k=1))
    check(res.k_used == 1, "second key of the file: RESULT")
    expect_error("second key (default limits), 1000 steps", "BAD_REQUEST",
                 lambda: other.generate(R(prompt="a", width=64, height=64, steps=1000, k=1)))

    # CANCEL from a second client while the GENERATE runs (1000 steps on the
    # tiny model take far longer than the cancel's round trip).
    long_req = R(prompt="a long one", width=64, height=64, steps=1000, k=1000)
    rid = hc.random_request_id()
    outcome = {}

    def run_long():
        try:
            outcome["r"] = client.generate(long_req, request_id=rid)
        except hc.HsdError as e:
            outcome["r"] = e
    th = threading.Thread(target=run_long)
    th.start()
    cancelled = False
    for _ in range(100):  # until the service knows the request
        time.sleep(0.05)
        if hc.Client(ep, key, timeout_ms=20000).cancel(rid):
            cancelled = True
            break
    th.join(timeout=60)
    r = outcome.get("r")
    check(cancelled and isinstance(r, hc.ServerError) and r.name == "CANCELLED",
          f"CANCEL from a second socket: acknowledged, the GENERATE ended {r}", r)

    st = client.status()
    check(st.requests_done >= 7 and st.requests_failed >= 1,
          f"STATUS after the run: {st.requests_done} done, {st.requests_failed} failed", st)

# No service at all: NoReply after the timeout, not a hang.
t0 = time.monotonic()
try:
    hc.Client(f"tcp://127.0.0.1:{free_port()}", key, timeout_ms=500).status()
    bad("no service: got a reply")
except hc.NoReply as e:
    s = time.monotonic() - t0
    check(s < 5, f"no service: NoReply after {s:.1f} s: {e}")

report.finish()
