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
- RESULT (hsd_edge_reference_result), ERROR and CANCEL_ACK encoded by C
  decode to what C put in; RESULT passes verify_result, and a RESULT that
  answers something else does not;
- differential fuzzing: the C fuzz corpus and a few thousand mutations of
  valid replies get the same verdict (accepted, or the same ERROR code)
  from the Python decoder as from hsd_wire_decode, and the Python decoder
  raises nothing but ProtocolError.

  test_wire.py WIRE_TOOL TEST_DATA
"""

import json
import os
import random
import struct
import subprocess
import sys
import tempfile

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
}
for name, req in cases.items():
    rid = hc.random_request_id()
    msg = client.encode_generate(req, rid)
    got = c_check(msg, keys)
    if not got.get("ok"):
        bad(f"GENERATE {name}: C refused it: {got}")
        continue
    g = got["generate"]
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
            else list(req.negative_prompt)}
    diff = {k: (g.get(k), v) for k, v in want.items() if g.get(k) != v}
    check(not diff and got["canonical"] and got["key_id"] == "edge-1" and
          got["request_id"] == str(rid) and got["type"] == "GENERATE",
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
for name, fn in {"endpoint http://": lambda: hc.Client("http://x:1"),
                 "tcp endpoint without port": lambda: hc.Client("tcp://x"),
                 "port 65536": lambda: hc.Client("tcp://127.0.0.1:65536"),
                 "key of the wrong type": lambda: hc.Client("tcp://x:1", key="edge-1"),
                 "timeout 0": lambda: hc.Client("tcp://x:1", timeout_ms=0)}.items():
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
for name, req in {"dpmpp-2m k=3 of 6, CFG": cases["text prompts, CFG"],
                  "euler k=2 of 4, no CFG": R(prompt="a cat", steps=4, k=2, sampler="euler",
                                              cfg_scale=1.0, width=64, height=128, seed=3)}.items():
    rid = hc.random_request_id()
    with open(path("gen.bin"), "wb") as f:
        f.write(client.encode_generate(req, rid))
    p = subprocess.run([tool, "reference", model, path("gen.bin"), path("res.bin")],
                       capture_output=True, text=True, timeout=120)
    if p.returncode:
        bad(f"reference RESULT {name}: wire_tool failed: {p.stderr}")
        continue
    raw = open(path("res.bin"), "rb").read()
    replies[name] = raw
    res = hc.decode_reply(raw)
    st = hc.verify_result(res, req)
    n_emb = 2 if req.cfg_scale > 1 else 1
    want_lat = (unet["in_channels"], req.height // 8, req.width // 8)
    want_emb = (n_emb, 77, text_enc["hidden_size"])
    check(isinstance(res, hc.Result) and res.request_id == rid and res.k_used == req.k and
          res.latent.shape == want_lat and res.latent.dtype == np.float32 and
          res.embeddings.shape == want_emb and st.step == req.k and st.n_steps == req.steps and
          len(st.timesteps) >= req.steps and st.history.shape[1] == res.latent.size,
          f"C-encoded RESULT {name}: latent {res.latent.shape}, embeddings "
          f"{res.embeddings.shape}, sampler state at step {st.step} of {st.n_steps} "
          f"({len(res.sampler_state)} bytes)",
          f"{res.latent.shape} vs {want_lat}, {res.embeddings.shape} vs {want_emb}")
    # The latent decoded by hand from §5.2's offsets equals the decoder's.
    c, h, w = want_lat
    by_hand = np.frombuffer(raw, "<f4", c * h * w, 32 + 32)
    check(np.array_equal(by_hand, res.latent.ravel()), f"{name}: latent at payload offset 32")
    # verify_result refuses a RESULT for another request.
    for what, other in {"other steps": R(**{**req.__dict__, "steps": req.steps + 1}),
                        "other split": R(**{**req.__dict__, "k": req.k - 1}),
                        "other sampler": R(**{**req.__dict__, "sampler": "ddim"}),
                        "other size": R(**{**req.__dict__, "width": req.width + 64})}.items():
        try:
            hc.verify_result(res, other)
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

for code, retry, text in ((8, 1500, "queue full — retry ü"), (6, 0, ""), (99, 0, "newer code")):
    rid = 2**64 - 2
    subprocess.run([tool, "error", str(rid), str(code), str(retry), text, path("err.bin")],
                   check=True, timeout=30)
    raw = open(path("err.bin"), "rb").read()
    replies[f"error {code}"] = raw
    e = hc.decode_reply(raw)
    want_name = {8: "BUSY", 6: "REPLAYED"}.get(code, "UNKNOWN")
    check(isinstance(e, hc.Error) and (e.request_id, e.code, e.name, e.retry_after_ms, e.text) ==
          (rid, code, want_name, retry, text), f"C-encoded ERROR {want_name} decodes", e)
subprocess.run([tool, "cancel-ack", "77", str(2**63), "1", path("ack.bin")], check=True, timeout=30)
raw = open(path("ack.bin"), "rb").read()
replies["cancel-ack"] = raw
a = hc.decode_reply(raw)
check(isinstance(a, hc.CancelAck) and (a.request_id, a.target, a.cancelled) == (77, 2**63, True),
      "C-encoded CANCEL_ACK decodes", a)

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
    # Protocol version 2 (SDXL): the C side speaks it, this client version 1
    # only, so it must refuse those with BAD_VERSION (docs/protocol.md §6).
    v2 = len(s) >= 6 and s[:4] == wire.MAGIC and struct.unpack_from("<H", s, 4)[0] == 2
    try:
        r = hc.decode_reply(s)
        mine = ("OK", type(r).__name__)
    except hc.ProtocolError as e:
        mine = ("ERR", wire.error_name(e.code))
        if (kind == "ERR" and what == mine[1]) or (v2 and mine[1] == "BAD_VERSION"):
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
