#!/usr/bin/env python3
"""The Python client (protocol version 2) against `hsd serve` running the
tiny SDXL pipeline (tests/data/pipeline_sdxl, made by
tests/oracle/make_sdxl_pipeline_cases.py), on 127.0.0.1:

- GENERATE with SDXL's original size and crop and the edge U-Net's widths:
  the RESULT is version 2, verifies (time ids = the request's, pooled as
  wide as the edge U-Net takes), and hsd_wire_decode reads the same pooled
  embeddings and time ids from the bytes the client received (wire_tool
  fields);
- end to end: that RESULT finished by the C edge (hsd_edge_verify_result +
  hsd_edge_finish on an SDXL edge pipeline with the small SDXL U-Net) gives
  the pixels of `hsd generate --model LARGE --edge-model SMALL --split k`
  with the same --original-size / --crop (test_edge_pngcmp), for CFG on
  and off and a negative prompt; finished as if another crop had been
  asked for, the C edge refuses it (the time ids are checked, so the
  equality is not vacuous);
- refusals before compute: a version 1 GENERATE (BAD_REQUEST naming
  version 2) and an SD 1.x edge's widths (BAD_REQUEST naming edge_ctx_c);
- a service that speaks version 1 only (stood in for by a pynng REP socket
  that answers as docs/protocol.md §6 says such a service does) gives a
  BAD_VERSION ServerError that says how to talk to it.

  test_serve_sdxl.py HSD WIRE_TOOL TEST_DATA PNGCMP
"""

import json
import os
import subprocess
import sys
import tempfile
import threading

try:
    import numpy as np
    import pynng
    import hsd_client as hc
except ImportError as e:
    print(f"SKIP: {e} (scripts/setup.sh installs tests/oracle/requirements.txt)")
    sys.exit(77)

from harness import Report, Serve, finish_vs_generate, free_port

hsd, tool, data, pngcmp = sys.argv[1:5]
large = os.path.join(data, "pipeline_sdxl", "large")
small = os.path.join(data, "pipeline_sdxl", "edge")
tmp = tempfile.TemporaryDirectory()
report = Report()
ok, bad, check = report.ok, report.bad, report.check

# The edge pipeline: the SDXL folder with the small SDXL U-Net as unet/ (as a
# KOALA folder ships with SDXL's text encoders and VAE; tests/cli/sdxl_serve.sh).
edge = os.path.join(tmp.name, "edge")
os.mkdir(edge)
for part in os.listdir(large):
    src = os.path.join(small if part == "unet" else large, part)
    os.symlink(os.path.abspath(src), os.path.join(edge, part))

# The edge U-Net's widths as diffusers reads them: cross_attention_dim, and
# the pooled width = projection_class_embeddings_input_dim - 6 time ids x
# addition_time_embed_dim (UNet2DConditionModel's text_time embedding).
cfg = json.load(open(os.path.join(small, "unet", "config.json")))
ctx_c = cfg["cross_attention_dim"]
pooled_c = cfg["projection_class_embeddings_input_dim"] - 6 * cfg["addition_time_embed_dim"]

keys = os.path.join(tmp.name, "keys")
with open(keys, "w") as f:
    f.write(f"edge-1 {os.urandom(32).hex()}\n")
os.chmod(keys, 0o600)
key = hc.Key.from_file(keys, "edge-1")
R = hc.GenerateRequest


def c_fields(raw: bytes):
    p = os.path.join(tmp.name, "reply.bin")
    with open(p, "wb") as f:
        f.write(raw)
    out = subprocess.run([tool, "fields", p], capture_output=True, text=True, timeout=60)
    return json.loads(out.stdout) if out.returncode in (0, 1) else {"rc": out.returncode}


with Serve(hsd, large, ["--keys", keys]) as srv:
    client = hc.Client(srv.endpoint, key, timeout_ms=60000)
    micro = dict(original_size=(768, 1024), crop=(16, 32))  # (h, w), (top, left) as diffusers
    widths = dict(edge_ctx_c=ctx_c, edge_pooled_c=pooled_c)
    cases = {
        "euler cfg 5, k=3 of 8, original size + crop": (
            R(prompt="a lighthouse at dusk", seed=1234, width=64, height=64, steps=8, k=3,
              sampler="euler", cfg_scale=5.0, **micro, **widths),
            ["--original-size", "1024x768", "--crop", "16,32"]),
        "dpmpp-2m, negative prompt, k=4 of 6, 128x64": (
            R(prompt="a red fox", negative_prompt="blurry, low quality", seed=7, width=128,
              height=64, steps=6, k=4, sampler="dpmpp-2m", cfg_scale=7.0, **widths), []),
        "ddim, cfg off, k=2 of 4": (
            R(prompt="a cat", seed=3, width=64, height=64, steps=4, k=2, sampler="ddim",
              cfg_scale=1.0, **widths), []),
    }
    first = None
    for name, (req, flags) in cases.items():
        rid = hc.random_request_id()
        msg = client.encode_generate(req, rid)
        raw = client.exchange_raw(msg)
        try:
            res = hc.decode_reply(raw)
            if isinstance(res, hc.Error):
                raise hc.ServerError(res.code, res.name, res.retry_after_ms, res.text, rid)
            hc.verify_result(res, req)
        except hc.HsdError as e:
            bad(f"{name}: {type(e).__name__}: {e}")
            continue
        n_emb = 2 if req.cfg_scale > 1 else 1
        # diffusers _get_add_time_ids: original (h, w), crop (top, left), target (h, w).
        oh, ow = req.original_size or (req.height, req.width)
        want_ids = [[oh, ow, *req.crop, req.height, req.width]] * n_emb
        got = c_fields(raw).get("result", {})
        check(res.version == 2 and res.request_id == rid and
              res.embeddings.shape == (n_emb, 77, ctx_c) and
              res.pooled.shape == (n_emb, pooled_c) and res.time_ids.tolist() == want_ids and
              np.isfinite(res.pooled).all() and res.pooled.any() and
              got.get("pooled") == res.pooled.ravel().tolist() and
              got.get("time_ids") == res.time_ids.ravel().tolist(),
              f"{name}: version 2 RESULT verified (k_used {res.k_used}, embeddings "
              f"{res.embeddings.shape}, pooled {res.pooled.shape}, time ids "
              f"{res.time_ids[0].tolist()}); hsd_wire_decode reads the same pooled and time ids",
              f"version {res.version}, {res.embeddings.shape}, {res.pooled.shape}, "
              f"{res.time_ids.tolist()} vs {want_ids}, C {got}")
        same, detail = finish_vs_generate(tmp.name, hsd, tool, pngcmp, large, edge, msg, raw,
                                          req, flags)
        check(same, f"{name}: pynng SDXL RESULT finished by the C edge == hsd generate "
              f"--edge-model SMALL --split {req.k}: {detail}", detail)
        if first is None:
            first = (req, msg, raw)

    # The C edge checks the time ids against its own request: the RESULT
    # for crop (16, 32) finished as an answer to crop (0, 0) is refused.
    if first:
        req, msg, raw = first
        other = client.encode_generate(R(**{**req.__dict__, "crop": (0, 0)}),
                                       hc.decode_reply(raw).request_id)
        same, detail = finish_vs_generate(tmp.name, hsd, tool, pngcmp, large, edge, other, raw,
                                          req, ["--original-size", "1024x768"])
        check(not same and "time_ids" in detail,
              f"the same RESULT for a request with another crop: the C edge refuses it "
              f"({detail[:160]})", detail)

    def refused(what, want, fn):
        try:
            got = fn()
            bad(f"{what}: accepted ({got})")
        except hc.ServerError as e:
            check(e.name == "BAD_REQUEST" and want in e.text, f"{what}: {e}",
                  f"wanted BAD_REQUEST naming {want!r}")

    small_req = R(prompt="a", width=64, height=64, steps=4, k=2)
    refused("version 1 GENERATE to an SDXL service", "version 2",
            lambda: hc.Client(srv.endpoint, key, timeout_ms=60000, version=1).generate(small_req))
    # tests/data/pipeline/edge: the SD 1.x edge U-Net (its cross_attention_dim).
    sd_ctx = json.load(open(os.path.join(data, "pipeline", "edge", "unet", "config.json")))[
        "cross_attention_dim"]
    refused("an SD 1.x edge's widths", "edge_ctx_c",
            lambda: client.generate(R(**{**small_req.__dict__, "edge_ctx_c": sd_ctx})))

# A service that speaks version 1 only answers a version 2 request with
# BAD_VERSION, in version 1, request id 0 (docs/protocol.md §6); wire_tool
# writes that reply with the C encoder.
err = os.path.join(tmp.name, "bad_version.bin")
subprocess.run([tool, "error", "0", "2", "0", "protocol version 2; this peer speaks versions 1..1",
                err, "1"], check=True, timeout=30)
reply = open(err, "rb").read()
ep = f"tcp://127.0.0.1:{free_port()}"
with pynng.Rep0(listen=ep, recv_timeout=20000, send_timeout=20000) as rep:
    def answer():
        try:
            rep.recv()
            rep.send(reply)
        except pynng.NNGException:
            pass
    th = threading.Thread(target=answer)
    th.start()
    try:
        hc.Client(ep, key, timeout_ms=20000).generate(R(prompt="a", k=1))
        bad("version 1 service: accepted")
    except hc.ServerError as e:
        check(e.name == "BAD_VERSION" and "version=1" in str(e),
              f"a version 1 service: ServerError that names the way out: {e}", e)
    th.join(timeout=30)

report.finish()
