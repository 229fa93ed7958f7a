#!/usr/bin/env python3
"""The Python client's encoder and decoders against the C implementation,
without sockets (docs/protocol.md is the contract both follow):

- GENERATE / STATUS_REQUEST / CANCEL built and signed in Python are
  accepted by hsd_auth_check (HMAC, window, key) and hsd_wire_decode, the
  decoded fields are the ones asked for, and hsd_wire_encode of them gives
  the same bytes (the encoding is canonical);
- tampered (checksum, then MAC), wrongly keyed, stale or unsigned messages
  are refused with §3/§4's codes;
- every bad input raises InvalidRequest / KeyFileError before anything is
  built;
- version 2 (the default) and version 1 (Client(version=1)) GENERATEs,
  SDXL's original size, crop and edge widths included;
- RESULT (hsd_edge_reference_result, versions 1 and 2), ERROR and
  CANCEL_ACK encoded by C decode to what C put in; RESULT passes
  verify_result, and a RESULT that answers something else does not;
- SDXL RESULTs (version 2: pooled embeddings, time ids) decode to what
  hsd_wire_decode reads from the same bytes (wire_tool fields), and broken
  ones (time ids out of range or non-finite, pooled without its time ids
  or embeddings, bad lengths) are refused by both with the same code;
- differential fuzzing: the C fuzz corpus and a few thousand mutations of
  valid replies of both versions get the same verdict (accepted, or the
  same ERROR code) from the Python decoder as from hsd_wire_decode, and
  the Python decoder raises nothing but ProtocolError.

  test_wire.py WIRE_TOOL TEST_DATA
"""

import json
import os
import random
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fuzz"))
from wire_v2_corpus import result_to_v2  # noqa: E402 - the spec-built SDXL RESULT

try:
    import numpy as np
    import hsd_client as hc
    from hsd_client import wire
except ImportError as e:  # the venv lacks a package: skipped, not passed
    print(f"SKIP: {e} (scripts/setup.sh installs tests/oracle/requirements.txt)")
    sys.exit(77)

from harness import Report

tool, data = sys.argv[1], sys.argv[2]
model = os.path.join(data, "pipeline", "large")
tmp = tempfile.TemporaryDirectory()
report = Report()
ok, bad, check = report.ok, report.bad, report.check


def path(name):
    return os.path.join(tmp.name, name)


def c_check(msg: bytes, keys: str):
    with open(path("msg.bin"), "wb") as f:
        f.write(msg)
    p = subprocess.run([tool, "check", keys, path("msg.bin")], capture_output=True, text=True,
                       timeout=60)
    if p.returncode not in (0, 1):
        raise RuntimeError(f"wire_tool check: rc {p.returncode}: {p.stderr}")
    return json.loads(p.stdout)


def write_keys(name, lines):
    with open(path(name), "w") as f:
        f.write("".join(f"{k} {s.hex()} {' '.join(opts)}\n" for k, s, *opts in lines))
    os.chmod(path(name), 0o600)
    return path(name)


secret = os.urandom(32)
# edge-1: the "every field set" case asks for 1000 steps, over the default
# per-key limit (docs/protocol.md §4 "Default limits").
keys = write_keys("keys", [("edge-1", secret, "max_steps=1000"), ("lab.gpu-2", os.urandom(64))])
key = hc.Key.from_file(keys, "edge-1")
client = hc.Client("tcp://127.0.0.1:9", key)

# ---- requests the C side accepts, field for field and byte for byte ----

cases = {
    "text prompts, CFG": hc.GenerateRequest(prompt="a lighthouse at dusk", negative_prompt="blurry",
                                            seed=11, width=64, height=64, steps=6, k=3),
    "token ids, k range, every field set": hc.GenerateRequest(
        prompt=[49406, 320, 2368, 49407], negative_prompt=[49406, 49407], seed=2**64 - 1,
        width=4096, height=120, steps=1000, k_range=(0, 1000), sampler="euler-a", cfg_scale=1.0,
        deadline_ms=3_600_000, clip_skip=23, priority=7, model="sd-1.5", return_embeddings=False),
    "non-ASCII text, pndm, no CFG": hc.GenerateRequest(
        prompt="Leuchtturm über dem Meer, 灯台 🌊", seed=0, width=512, height=768, steps=25,
        k=25,
        sampler=4, cfg_scale=0.5),
    "empty prompts": hc.GenerateRequest(prompt="", steps=1, k=0, sampler="ddim"),
    "LoRAs (list and dict)": hc.GenerateRequest(prompt="a cat", k=2, steps=4,
                                                loras={"kohya": 0.8, "ä-style": -1.5}),
    "A1111 prompt style": hc.GenerateRequest(prompt="(a lighthouse:1.2) " * 40,
                                             negative_prompt="[blurry]", steps=4, k=2,
                                             prompt_style="a1111"),
    "A1111 prompt style with LoRAs": hc.GenerateRequest(prompt="(a lighthouse:1.2) " * 2, k=2,
                                                        steps=4, prompt_style="a1111",
                                                        loras=[("kohya", 0.5)]),
    "SDXL: original size, crop, edge widths": hc.GenerateRequest(
        prompt="an astronaut", width=1024, height=768, steps=25, k=10, sampler="euler",
        cfg_scale=5.0, original_size=(1536, 2048), crop=(16, 32), edge_ctx_c=2048,
        edge_pooled_c=1280),
    "SDXL: largest micro-conditioning and widths": hc.GenerateRequest(
        prompt="a", k=1, original_size=(65535, 1), crop=(65535, 0), edge_ctx_c=4096,
        edge_pooled_c=4096),
    "edge_ctx_c alone (an SD 1.x edge)": hc.GenerateRequest(prompt="a", k=1, edge_ctx_c=768),
}
v1_client = hc.Client("tcp://127.0.0.1:9", key, version=1)
runs = [(name, req, client, 2) for name, req in cases.items()]
# Version 1 (a service from before version 2): every case without SDXL's fields.
runs += [(name, req, v1_client, 1) for name, req in cases.items()
         if not any(req.micro()) and not req.edge_ctx_c]
for name, req, cl, version in runs:
    name = f"{name} (version {version})"
    rid = hc.random_request_id()
    msg = cl.encode_generate(req, rid)
    got = c_check(msg, keys)
    if not got.get("ok"):
        bad(f"GENERATE {name}: C refused it: {got}")
        continue
    g = got["generate"]
    orig_h, orig_w = req.original_size or (0, 0)
    k_min, k_max = req.split()
    cfg32 = struct.unpack("<f", struct.pack("<f", req.cfg_scale))[0]
    want = {"seed": str(req.seed), "width": req.width, "height": req.height, "steps": req.steps,
            "k_min": k_min, "k_max": k_max, "sampler": int(hc.Sampler.parse(req.sampler)),
            "flags": (1 if req.return_embeddings else 0) |
                     (2 if req.prompt_style == "a1111" else 0) | (4 if req.loras else 0),
            "cfg_scale": cfg32,
            "loras": [[n, struct.unpack("<f", struct.pack("<f", v))[0]]
                      for n, v in (req.loras.items() if isinstance(req.loras, dict)
                                   else req.loras)],
            "deadline_ms": req.deadline_ms, "clip_skip": req.clip_skip,
            "priority": req.priority, "model": req.model,
            "prompt": req.prompt if isinstance(req.prompt, str) else list(req.prompt),
            "negative_prompt": req.negative_prompt if isinstance(req.negative_prompt, str)
            else list(req.negative_prompt),
            "original_width": orig_w, "original_height": orig_h, "crop_top": req.crop[0],
            "crop_left": req.crop[1], "edge_ctx_c": req.edge_ctx_c,
            "edge_pooled_c": req.edge_pooled_c}
    diff = {k: (g.get(k), v) for k, v in want.items() if g.get(k) != v}
    check(not diff and got["canonical"] and got["key_id"] == "edge-1" and
          got["request_id"] == str(rid) and got["type"] == "GENERATE" and
          got["version"] == version,
          f"GENERATE {name}: C verifies the HMAC, decodes the same fields, re-encodes the same "
          f"{len(msg)} bytes", f"{diff} {got}")

rid = hc.random_request_id()
got = c_check(hc.sign(wire.encode_status_request(rid, True), key), keys)
check(got.get("ok") and got["canonical"] and got["type"] == "STATUS_REQUEST" and
      got["request_id"] == str(rid), "signed STATUS_REQUEST accepted, canonical", got)
got = c_check(hc.sign(wire.encode_cancel(2**63 + 5, rid, True), key), keys)
check(got.get("ok") and got["canonical"] and got["type"] == "CANCEL" and
      got["target"] == str(2**63 + 5), "signed CANCEL accepted, canonical", got)
k2 = hc.Key.from_file(keys, "lab.gpu-2")
got = c_check(hc.Client("tcp://x:1", k2).encode_generate(cases["empty prompts"], 1), keys)
check(got.get("ok") and got["key_id"] == "lab.gpu-2", "a 64-byte secret signs too", got)

# ---- refusals, with the codes of §3 / §4 ----

req = cases["text prompts, CFG"]
good = bytearray(client.encode_generate(req, 42))
flipped = bytearray(good)
flipped[32] ^= 0x01  # the seed: still a valid request, so only the MAC can tell
got = c_check(bytes(flipped), keys)
check(got.get("code") == "BAD_CHECKSUM", "flipped payload byte: BAD_CHECKSUM", got)
wire.put_checksum(flipped)  # a forger can fix the CRC, not the MAC
got = c_check(bytes(flipped), keys)
check(got.get("code") == "UNAUTHENTICATED", "flipped byte, checksum fixed: UNAUTHENTICATED", got)
wrong = hc.Key("edge-1", os.urandom(32))
got = c_check(hc.Client("tcp://x:1", wrong).encode_generate(req, 42), keys)
check(got.get("code") == "UNAUTHENTICATED", "wrong secret: UNAUTHENTICATED", got)
stale = hc.sign(wire.encode_generate(req, 42, True), key, timestamp_ms=hc.auth.now_ms() - 600_000)
got = c_check(bytes(stale), keys)
check(got.get("code") == "UNAUTHENTICATED" and "behind" in got.get("error", ""),
      "timestamp 10 min old: UNAUTHENTICATED (behind)", got)
got = c_check(bytes(wire.encode_generate(req, 42, False)), keys)
check(got.get("code") == "UNAUTHENTICATED", "unsigned, service has keys: UNAUTHENTICATED", got)
got = c_check(bytes(hc.sign(wire.encode_generate(req, 42, True), hc.Key("edge-9", secret))), keys)
check(got.get("code") == "UNAUTHENTICATED", "unknown key id: UNAUTHENTICATED", got)

# ---- bad inputs: refused in Python, nothing built ----

R = hc.GenerateRequest
bad_requests = {
    "width not a multiple of 8": R(prompt="a", width=100, k=1),
    "height below 64": R(prompt="a", height=56, k=1),
    "width above 4096": R(prompt="a", width=4104, k=1),
    "steps 0": R(prompt="a", steps=0, k=0),
    "steps 1001": R(prompt="a", steps=1001, k=1),
    "k > steps": R(prompt="a", steps=5, k=6),
    "k and k_range": R(prompt="a", k=1, k_range=(0, 1)),
    "no split": R(prompt="a"),
    "k_min > k_max": R(prompt="a", k_range=(3, 2)),
    "k_range not a pair": R(prompt="a", k_range=5),
    "negative seed": R(prompt="a", k=1, seed=-1),
    "seed 2^64": R(prompt="a", k=1, seed=2**64),
    "seed as float": R(prompt="a", k=1, seed=1.0),
    "unknown sampler name": R(prompt="a", k=1, sampler="heun"),
    "sampler id 6": R(prompt="a", k=1, sampler=6),
    "cfg NaN": R(prompt="a", k=1, cfg_scale=float("nan")),
    "cfg inf": R(prompt="a", k=1, cfg_scale=float("inf")),
    "cfg > 100": R(prompt="a", k=1, cfg_scale=100.5),
    "cfg < 0": R(prompt="a", k=1, cfg_scale=-1),
    "deadline > 1 h": R(prompt="a", k=1, deadline_ms=3_600_001),
    "clip skip 24": R(prompt="a", k=1, clip_skip=24),
    "priority 8": R(prompt="a", k=1, priority=8),
    "model name 256 bytes": R(prompt="a", k=1, model="m" * 256),
    "prompt over 16384 bytes": R(prompt="ü" * 8193, k=1),
    "NUL in prompt": R(prompt="a\0b", k=1),
    "lone surrogate": R(prompt="a\ud800", k=1),
    "prompt as bytes": R(prompt=b"a", k=1),
    "78 token ids": R(prompt=[1] * 78, k=1),
    "no token ids": R(prompt=[], k=1),
    "token id 2^24": R(prompt=[49406, 1 << 24], k=1),
    "negative token id": R(prompt=[-1], k=1),
    "prompt None": R(prompt=None, k=1),
    "return_embeddings not bool": R(prompt="a", k=1, return_embeddings=1),
    "9 LoRAs": R(prompt="a", k=1, loras=[(f"l{i}", 1.0) for i in range(9)]),
    "LoRA listed twice": R(prompt="a", k=1, loras=[("a", 1.0), ("a", 0.5)]),
    "LoRA scale 17": R(prompt="a", k=1, loras={"a": 17.0}),
    "LoRA name 64 bytes": R(prompt="a", k=1, loras={"x" * 64: 1.0}),
    "empty LoRA name": R(prompt="a", k=1, loras={"": 1.0}),
    "LoRA not a pair": R(prompt="a", k=1, loras=["a"]),
    "prompt style unknown": R(prompt="a", k=1, prompt_style="comfy"),
    "a1111 with token ids": R(prompt=[49406, 49407], k=1, prompt_style="a1111"),
    "original_size negative": R(prompt="a", k=1, original_size=(-1, 64)),
    "original_size 65536": R(prompt="a", k=1, original_size=(1024, 65536)),
    "original_size as a string": R(prompt="a", k=1, original_size="1024x768"),
    "original_size of floats": R(prompt="a", k=1, original_size=(1024.0, 768.0)),
    "crop of one number": R(prompt="a", k=1, crop=(3,)),
    "crop 65536": R(prompt="a", k=1, crop=(65536, 0)),
    "edge_ctx_c 4097": R(prompt="a", k=1, edge_ctx_c=4097),
    "edge_pooled_c 4097": R(prompt="a", k=1, edge_ctx_c=2048, edge_pooled_c=4097),
    "edge_pooled_c without edge_ctx_c": R(prompt="a", k=1, edge_pooled_c=1280),
}
for name, r in bad_requests.items():
    try:
        client.encode_generate(r, 1)
        bad(f"bad input accepted: {name}")
    except hc.InvalidRequest as e:
        ok(f"bad input refused: {name}: {e}")
    except Exception as e:  # noqa: BLE001 - any other exception type is a failure
        bad(f"bad input {name}: {type(e).__name__} instead of InvalidRequest: {e}")

key_files = {
    "secret too short": "edge-1 " + "ab" * 31 + "\n",
    "secret too long": "edge-1 " + "ab" * 65 + "\n",
    "odd hex digits": "edge-1 " + "a" * 65 + "\n",
    "non-hex secret": "edge-1 " + "zz" * 32 + "\n",
    "bad key id": "edge/1 " + "ab" * 32 + "\n",
    "key id of 32 chars": "k" * 32 + " " + "ab" * 32 + "\n",
    "unknown option": "edge-1 " + "ab" * 32 + " colour=red\n",
    "option without value": "edge-1 " + "ab" * 32 + " burst\n",
    "no secret": "edge-1\n",
    "no keys at all": "# nothing here\n\n",
}
for name, text in key_files.items():
    with open(path("badkeys"), "w") as f:
        f.write(text)
    try:
        hc.load_keys(path("badkeys"))
        bad(f"keys file accepted: {name}")
    except hc.KeyFileError as e:
        ok(f"keys file refused: {name}: {e}")
for name, fn in {"missing keys file": lambda: hc.Key.from_file(path("none"), "edge-1"),
                 "key id not in file": lambda: hc.Key.from_file(keys, "edge-9"),
                 "Key with 31-byte secret": lambda: hc.Key("edge-1", b"x" * 31)}.items():
    try:
        fn()
        bad(f"accepted: {name}")
    except hc.KeyFileError as e:
        ok(f"refused: {name}: {e}")
# Version 1 cannot carry SDXL's fields (wire_msg.c check_generate_v2 refuses
# them too); versions other than 1 and 2 are not spoken.
for name, fn in {"crop in version 1": lambda: v1_client.encode_generate(R(prompt="a", k=1,
                                                                         crop=(0, 8)), 1),
                 "edge_ctx_c in version 1": lambda: v1_client.encode_generate(
                     R(prompt="a", k=1, edge_ctx_c=768), 1),
                 "original_size in version 1": lambda: v1_client.encode_generate(
                     R(prompt="a", k=1, original_size=(768, 1024)), 1)}.items():
    try:
        fn()
        bad(f"version 1 accepted: {name}")
    except hc.InvalidRequest as e:
        ok(f"version 1 refuses: {name}: {e}")
for name, fn in {"endpoint http://": lambda: hc.Client("http://x:1"),
                 "tcp endpoint without port": lambda: hc.Client("tcp://x"),
                 "port 65536": lambda: hc.Client("tcp://127.0.0.1:65536"),
                 "key of the wrong type": lambda: hc.Client("tcp://x:1", key="edge-1"),
                 "timeout 0": lambda: hc.Client("tcp://x:1", timeout_ms=0),
                 "protocol version 3": lambda: hc.Client("tcp://x:1", version=3),
                 "protocol version 0": lambda: hc.Client("tcp://x:1", version=0)}.items():
    try:
        fn()
        bad(f"client accepted: {name}")
    except hc.InvalidRequest as e:
        ok(f"client refused: {name}: {e}")
try:
    hc.Client("tcp://[::1:7100", timeout_ms=300).status()
    bad("malformed IPv6 endpoint accepted")
except hc.TransportError as e:
    ok(f"malformed endpoint: TransportError from nng: {e}")
ids = np.array([49406, 320, 49407], dtype=np.int64)  # as a tokenizer returns them
got = c_check(client.encode_generate(R(prompt=ids, k=1), 9), keys)
check(got.get("ok") and got["generate"]["prompt"] == ids.tolist(),
      "numpy token ids encode like a list", got)

# ---- replies the C encoder built ----

unet = json.load(open(os.path.join(model, "unet", "config.json")))
text_enc = json.load(open(os.path.join(model, "text_encoder", "config.json")))
replies = {}
euler = R(prompt="a cat", steps=4, k=2, sampler="euler", cfg_scale=1.0, width=64, height=128,
          seed=3)
# The reference answers in the request's version, as a service does.
for name, req, version in (("dpmpp-2m k=3 of 6, CFG", cases["text prompts, CFG"], 2),
                           ("dpmpp-2m k=3 of 6, CFG", cases["text prompts, CFG"], 1),
                           ("euler k=2 of 4, no CFG", euler, 2)):
    name = f"{name}, version {version}"
    rid = hc.random_request_id()
    with open(path("gen.bin"), "wb") as f:
        f.write(wire.encode_generate(req, rid, False, version))
    p = subprocess.run([tool, "reference", model, path("gen.bin"), path("res.bin")],
                       capture_output=True, text=True, timeout=120)
    if p.returncode:
        bad(f"reference RESULT {name}: wire_tool failed: {p.stderr}")
        continue
    raw = open(path("res.bin"), "rb").read()
    replies[name] = raw
    res = hc.decode_reply(raw)
    st = hc.verify_result(res, req, version)
    n_emb = 2 if req.cfg_scale > 1 else 1
    want_lat = (unet["in_channels"], req.height // 8, req.width // 8)
    want_emb = (n_emb, 77, text_enc["hidden_size"])
    check(isinstance(res, hc.Result) and res.request_id == rid and res.k_used == req.k and
          res.version == version and res.pooled is None and res.time_ids is None and
          res.latent.shape == want_lat and res.latent.dtype == np.float32 and
          res.embeddings.shape == want_emb and st.step == req.k and st.n_steps == req.steps and
          len(st.timesteps) >= req.steps and st.history.shape[1] == res.latent.size,
          f"C-encoded RESULT {name}: latent {res.latent.shape}, embeddings "
          f"{res.embeddings.shape}, sampler state at step {st.step} of {st.n_steps} "
          f"({len(res.sampler_state)} bytes)",
          f"{res.latent.shape} vs {want_lat}, {res.embeddings.shape} vs {want_emb}")
    # The latent decoded by hand from §5.2's offsets equals the decoder's.
    c, h, w = want_lat
    at = 36 if version == 2 else 32
    by_hand = np.frombuffer(raw, "<f4", c * h * w, 32 + at)
    check(np.array_equal(by_hand, res.latent.ravel()), f"{name}: latent at payload offset {at}")
    try:
        hc.verify_result(res, req, 3 - version)
        bad(f"{name}: verify_result accepted it as an answer to version {3 - version}")
    except hc.VerificationError as e:
        ok(f"{name}: verify_result refuses the other version: {e}")
    # verify_result refuses a RESULT for another request.
    for what, other in {"other steps": R(**{**req.__dict__, "steps": req.steps + 1}),
                        "other split": R(**{**req.__dict__, "k": req.k - 1}),
                        "other sampler": R(**{**req.__dict__, "sampler": "ddim"}),
                        "other size": R(**{**req.__dict__, "width": req.width + 64})}.items():
        try:
            hc.verify_result(res, other, version)
            bad(f"{name}: verify_result accepted {what}")
        except hc.VerificationError as e:
            ok(f"{name}: verify_result refuses {what}: {e}")
    broken = bytearray(res.sampler_state)
    broken[100] ^= 0xFF
    try:
        hc.decode_sampler_state(bytes(broken))
        bad(f"{name}: corrupted sampler state accepted")
    except hc.VerificationError as e:
        ok(f"{name}: corrupted sampler state refused: {e}")

for (code, retry, text), version in zip(((8, 1500, "queue full — retry ü"), (6, 0, ""),
                                         (99, 0, "newer code"), (2, 0, "version 2 only")),
                                        (1, 2, 1, 2)):
    rid = 2**64 - 2
    subprocess.run([tool, "error", str(rid), str(code), str(retry), text, path("err.bin"),
                    str(version)], check=True, timeout=30)
    raw = open(path("err.bin"), "rb").read()
    replies[f"error {code}"] = raw
    e = hc.decode_reply(raw)
    want_name = {8: "BUSY", 6: "REPLAYED", 2: "BAD_VERSION"}.get(code, "UNKNOWN")
    check(isinstance(e, hc.Error) and (e.request_id, e.code, e.name, e.retry_after_ms, e.text) ==
          (rid, code, want_name, retry, text), f"C-encoded ERROR {want_name} (version "
          f"{version}) decodes", e)
for version in (1, 2):
    subprocess.run([tool, "cancel-ack", "77", str(2**63), "1", path("ack.bin"), str(version)],
                   check=True, timeout=30)
    raw = open(path("ack.bin"), "rb").read()
    replies[f"cancel-ack {version}"] = raw
    a = hc.decode_reply(raw)
    check(isinstance(a, hc.CancelAck) and
          (a.request_id, a.target, a.cancelled) == (77, 2**63, True),
          f"C-encoded CANCEL_ACK (version {version}) decodes", a)

# ---- SDXL RESULTs (version 2): pooled embeddings and time ids ----


def c_fields(msg: bytes):
    with open(path("res.bin"), "wb") as f:
        f.write(msg)
    p = subprocess.run([tool, "fields", path("res.bin")], capture_output=True, text=True,
                       timeout=60)
    if p.returncode not in (0, 1):
        raise RuntimeError(f"wire_tool fields: rc {p.returncode}: {p.stderr}")
    return json.loads(p.stdout)


# A real RESULT (its sampler state verifies) made SDXL-shaped from the
# spec's tables (tests/fuzz/wire_v2_corpus.py, struct + zlib), answering a
# request with an original size and a crop.
base = replies["dpmpp-2m k=3 of 6, CFG, version 1"]
sdxl_req = R(**{**cases["text prompts, CFG"].__dict__, "original_size": (768, 1024),
                "crop": (16, 32)})
ids = list(map(float, sdxl_req.time_ids()))
check(ids == [768.0, 1024.0, 16.0, 32.0, 64.0, 64.0],
      f"time ids as diffusers' _get_add_time_ids orders them: {ids}")
pooled_c = 8
sdxl = result_to_v2(base, pooled_c, ids)
got = c_fields(sdxl)
res = hc.decode_reply(sdxl)
cr = got.get("result", {})
same = (got.get("ok") and got["canonical"] and got["version"] == 2 and res.version == 2 and
        res.pooled.shape == (2, pooled_c) and res.time_ids.shape == (2, 6) and
        cr["pooled_c"] == pooled_c and cr["n_time_ids"] == 6 and
        res.pooled.ravel().tolist() == cr["pooled"] and
        res.time_ids.ravel().tolist() == cr["time_ids"] and
        res.latent.shape == (cr["c"], cr["h"], cr["w"]) and
        res.embeddings.shape == (cr["n_emb"], cr["emb_t"], cr["emb_c"]))
check(same, f"SDXL RESULT: Python and hsd_wire_decode read the same pooled {res.pooled.shape} "
      f"and time ids {res.time_ids.shape}; C re-encodes the same bytes", got)
replies["sdxl"] = sdxl
emb_c = res.embeddings.shape[2]
st = hc.verify_result(res, R(**{**sdxl_req.__dict__, "edge_ctx_c": emb_c,
                                "edge_pooled_c": pooled_c}))
ok(f"SDXL RESULT verifies for its request (edge widths {emb_c}/{pooled_c}, time ids {ids})")
for what, other in {"another crop": R(**{**sdxl_req.__dict__, "crop": (0, 0)}),
                    "another original size": R(**{**sdxl_req.__dict__, "original_size": None}),
                    "another edge_pooled_c": R(**{**sdxl_req.__dict__, "edge_ctx_c": emb_c,
                                                  "edge_pooled_c": 1280}),
                    "an SD 1.x edge (edge_pooled_c 0)": R(**{**sdxl_req.__dict__,
                                                             "edge_ctx_c": emb_c}),
                    "another edge_ctx_c": R(**{**sdxl_req.__dict__, "edge_ctx_c": 2048,
                                               "edge_pooled_c": pooled_c})}.items():
    try:
        hc.verify_result(res, other)
        bad(f"SDXL RESULT: verify_result accepted {what}")
    except hc.VerificationError as e:
        ok(f"SDXL RESULT: verify_result refuses {what}: {e}")

# Broken ones: each refused by both decoders with the code §3 names.
broken = {
    "time id -1": (result_to_v2(base, pooled_c, ids[:5] + [-1.0]), "BAD_REQUEST"),
    "time id 65536": (result_to_v2(base, pooled_c, [65536.0] + ids[1:]), "BAD_REQUEST"),
    "time id NaN": (result_to_v2(base, pooled_c, [float("nan")] + ids[1:]), "BAD_REQUEST"),
    "pooled +Inf": (result_to_v2(base, pooled_c, ids, pooled=[float("inf")] * 2 * pooled_c),
                    "BAD_REQUEST"),
    "5 time ids": (result_to_v2(base, pooled_c, ids[:5], n_ids=5), "BAD_REQUEST"),
    "time ids without pooled": (result_to_v2(base, 0, ids), "BAD_REQUEST"),
    "pooled without time ids": (result_to_v2(base, pooled_c, [], n_ids=0), "BAD_REQUEST"),
    "pooled_c 4097": (result_to_v2(base, 4097, ids), "BAD_REQUEST"),
    "pooled_c says 9, 8 sent": (result_to_v2(base, pooled_c + 1, ids,
                                             pooled=[0.0] * 2 * pooled_c), "BAD_MESSAGE"),
}
# Pooled embeddings without text embeddings: n_emb 0 (and no embedding
# shape), so the pooled and time-id arrays are empty; their widths alone
# must be refused.
p0 = bytearray(sdxl[:32 + 36])
p0[32 + 5] = 0
struct.pack_into("<HH", p0, 32 + 12, 0, 0)
n_lat = 4 * res.latent.size
p0 += sdxl[32 + 36:32 + 36 + n_lat + 4 + len(res.sampler_state)]
struct.pack_into("<I", p0, 12, len(p0) - 32)
wire.put_checksum(p0)
broken["pooled without text embeddings"] = (bytes(p0), "BAD_REQUEST")
# A version 2 payload under a version 1 header, and the reverse.
for what, msg, v in (("version 2 payload, version 1 header", sdxl, 1),
                     ("version 1 payload, version 2 header", base, 2)):
    m = bytearray(msg)
    struct.pack_into("<H", m, 4, v)
    wire.put_checksum(m)
    broken[what] = (bytes(m), None)  # whatever code: the same on both sides
m = bytearray(sdxl[:-4])  # the last time id cut off, lengths made consistent
struct.pack_into("<I", m, 12, len(m) - 32)
wire.put_checksum(m)
broken["last time id cut off"] = (bytes(m), "BAD_MESSAGE")
for what, (msg, want) in broken.items():
    got = c_fields(msg)
    try:
        hc.decode_reply(msg)
        mine = "accepted"
    except hc.ProtocolError as e:
        mine = wire.error_name(e.code)
    check(not got.get("ok") and got.get("code") == mine and (want is None or mine == want),
          f"broken SDXL RESULT, {what}: both refuse it, {mine}",
          f"C {got}, Python {mine}, want {want}")
    replies[f"broken {what}"] = msg

# ---- differential fuzzing against hsd_wire_decode ----

rng = random.Random(1234)  # fixed: a failure replays
samples = []
corpus = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fuzz", "corpus")
for sub in ("wire", "edge_result"):
    d = os.path.join(corpus, sub)
    for fn in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        samples.append(open(os.path.join(d, fn), "rb").read())
n_corpus = len(samples)
seeds = list(replies.values())
for s in samples:  # the corpus's valid replies too (STATUS among them)
    try:
        hc.decode_reply(s)
        seeds.append(s)
    except hc.HsdError:
        pass
for i in range(3000):
    m = bytearray(rng.choice(seeds))
    op = rng.randrange(6)
    if op == 0:  # flip bits
        for _ in range(rng.randint(1, 4)):
            j = rng.randrange(len(m))
            m[j] ^= 1 << rng.randrange(8)
    elif op == 1:  # truncate
        del m[rng.randrange(len(m)):]
    elif op == 2:  # append
        m += bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    elif op == 3:  # overwrite a header or fixed payload field with an extreme value
        j = rng.randrange(min(len(m), 96))
        m[j:j + 4] = rng.choice([b"\xff\xff\xff\xff", b"\0\0\0\0", b"\x00\x00\xc0\x7f"])
    elif op == 4:  # change a length-ish u16/u32 by a little
        j = rng.randrange(min(len(m), 96))
        m[j] = (m[j] + rng.choice([-1, 1, 2, 77])) & 0xFF
    else:  # a random byte anywhere
        m[rng.randrange(len(m))] = rng.randrange(256)
    if len(m) >= 32 and rng.random() < 0.8:
        wire.put_checksum(m)  # reach past the CRC most of the time
    samples.append(bytes(m))
with open(path("list"), "w") as lst:
    for i, s in enumerate(samples):
        with open(path(f"f{i}"), "wb") as f:
            f.write(s)
        lst.write(path(f"f{i}") + "\n")
c_out = subprocess.run([tool, "decode", path("list")], capture_output=True, text=True,
                       check=True, timeout=120).stdout.splitlines()
agree = disagree = skipped_requests = 0
first = []
for i, (s, verdict) in enumerate(zip(samples, c_out)):
    kind, what = verdict.split(" ", 1)
    try:
        is_request = hc.decode_frame(s).type in (1, 4, 6)
    except hc.ProtocolError:
        is_request = False
    if is_request:  # a reply decoder refuses requests by design: frame checks only
        skipped_requests += 1
        continue
    try:
        r = hc.decode_reply(s)
        mine = ("OK", type(r).__name__)
    except hc.ProtocolError as e:
        mine = ("ERR", wire.error_name(e.code))
        if kind == "ERR" and what == mine[1]:
            agree += 1
            continue
    except Exception as e:  # noqa: BLE001 - a crash of the decoder is a failure
        mine = ("CRASH", f"{type(e).__name__}: {e}")
    else:
        c_name = {"RESULT": "Result", "ERROR": "Error", "STATUS": "Status",
                  "CANCEL_ACK": "CancelAck"}.get(what)
        if kind == "OK" and c_name == mine[1]:
            agree += 1
            continue
    disagree += 1
    if len(first) < 5:
        first.append(f"#{i} ({len(s)} B): C {verdict}, Python {mine}")
check(len(c_out) == len(samples) and disagree == 0,
      f"differential fuzz: {agree} of {len(samples)} messages ({n_corpus} from the C corpus) get "
      f"the same verdict from Python and C ({skipped_requests} requests with a valid frame "
      "skipped)",
      f"{disagree} disagree: {first}")

report.finish()
