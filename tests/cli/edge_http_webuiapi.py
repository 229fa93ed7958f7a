"""`hsd edge --http` driven by webuiapi (PyPI, unmodified), the Python
client of AUTOMATIC1111's API; run by tests/cli/edge_http.sh, which starts
the daemons. Every image is compared pixel for pixel with `hsd generate
--model LARGE --edge-model EDGE --split k` (or `--model EDGE` for the local
fallback) with the same parameters: the HTTP path must add nothing.
Prints one line per check and "N passed, M failed"."""
import argparse
import base64
import io
import json
import subprocess
import threading
import time

import numpy as np
import requests
import webuiapi
from PIL import Image

ap = argparse.ArgumentParser()
ap.add_argument("--hsd", required=True)
ap.add_argument("--large", required=True)
ap.add_argument("--edge", required=True)
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--port-local", type=int, required=True)
ap.add_argument("--split", type=int, required=True)
ap.add_argument("--tmp", required=True)
a = ap.parse_args()

passed = failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    return ok


# A1111's names -> hsd generate's --sampler (docs/edge-http.md).
OURS = {"DPM++ 2M": "dpmpp-2m", "Euler a": "euler-a", "Euler": "euler", "DDIM": "ddim",
        "PLMS": "pndm", "LCM": "lcm"}


def generate(seed, k, p):
    """Pixels of `hsd generate` for one image of request p (k None: the edge alone),
    on one thread as the daemons and hsd serve (edge_http.sh)."""
    out = f"{a.tmp}/g.png"
    cmd = [a.hsd, "generate", "-p", p["prompt"], "-n", p.get("negative_prompt", ""),
           "--steps", str(p["steps"]), "--sampler", OURS[p["sampler_name"]],
           "--cfg", repr(float(p.get("cfg_scale", 7.0))), "--width", str(p["width"]),
           "--height", str(p["height"]), "--seed", str(seed),
           "--clip-skip", str(p.get("clip_skip", 0)), "--vae", p.get("vae", "full"),
           "--threads", "1", "-q", "-o", out]
    cmd += ["--model", a.edge] if k is None else ["--model", a.large, "--edge-model", a.edge,
                                                  "--split", str(k)]
    subprocess.run(cmd, check=True, capture_output=True)
    return np.asarray(Image.open(out).convert("RGB"))


api = webuiapi.WebUIApi(host="127.0.0.1", port=a.port)
url = f"http://127.0.0.1:{a.port}/sdapi/v1"

# ---- listings ----
names = api.util_get_sampler_names()
check(sorted(OURS) == names, f"samplers under A1111's names: {names}")
models = api.util_get_model_names()
check(models == ["edge"], f"sd-models: {models}")
opts = api.get_options()
check(opts.get("sd_model_checkpoint") == "edge" and opts.get("hsd_split") == a.split,
      f"options: {opts}")
check(api.util_get_current_model() == "edge", "util_get_current_model")
bad = api.set_options({"sd_model_checkpoint": "sd_xl_base_1.0"})
check(isinstance(bad, dict) and "not found" in bad.get("detail", ""),
      f"options: an unknown model is refused: {bad}")

# ---- txt2img == hsd generate --split k ----
cases = [
    dict(prompt="a lighthouse at dusk", negative_prompt="blurry", sampler_name="DPM++ 2M",
         steps=6, width=64, height=64, seed=11, cfg_scale=7.5),
    dict(prompt="a red fox", sampler_name="Euler a", steps=5, width=64, height=128, seed=5,
         batch_size=2),
    dict(prompt="mountains", sampler_name="DDIM", steps=5, width=128, height=64, seed=0,
         cfg_scale=1.0, n_iter=2),
    dict(prompt="a boat", sampler_name="PLMS", steps=6, width=64, height=64, seed=123456789),
    # The split and clip skip from override_settings (A1111's CLIP_stop_at_last_layers
    # 2 = hsd's --clip-skip 1).
    dict(prompt="a cat", sampler_name="Euler", steps=6, width=64, height=64, seed=7,
         override_settings={"hsd_split": 4, "CLIP_stop_at_last_layers": 2}, k=4, clip_skip=1),
    # seed -1: the daemon draws one and says which in info.
    dict(prompt="a random seed", sampler_name="Euler a", steps=4, width=64, height=64,
         seed=-1),
]
for p in cases:
    kw = {x: v for x, v in p.items() if x not in ("k", "clip_skip")}
    k = p.get("k", a.split)
    r = api.txt2img(**kw)
    info = r.info
    n = p.get("batch_size", 1) * p.get("n_iter", 1)
    name = f"{p['sampler_name']} {p['width']}x{p['height']} {p['steps']} steps seed {p['seed']}" \
           f" x{n}"
    if not check(isinstance(r.json.get("info"), str) and isinstance(info, dict)
                 and len(r.images) == n and len(info["all_seeds"]) == n,
                 f"{name}: {len(r.images)} images, info is a JSON string"):
        continue
    seed = info["seed"]
    if p["seed"] >= 0:
        check(seed == p["seed"], f"{name}: info.seed {seed}")
    else:
        check(0 <= seed < 4294967294, f"{name}: a random seed was drawn: {seed}")
    for i, img in enumerate(r.images):
        h = info["hybrid"][i]
        want = generate(seed + i, k, {**p, "clip_skip": p.get("clip_skip", 0)})
        got = np.asarray(img.convert("RGB"))
        same = got.shape == want.shape and np.array_equal(got, want)
        worst = int(np.abs(got.astype(int) - want.astype(int)).max()) if got.shape == want.shape \
            else -1
        check(same and h["cloud_k"] == k and h["fallback"] is None
              and info["all_seeds"][i] == seed + i,
              f"{name} image {i}: == hsd generate --split {k} --seed {seed + i} "
              f"(cloud k {h['cloud_k']}, fallback {h['fallback']}, max |diff| {worst})")
    check("Steps: %d" % p["steps"] in info["infotexts"][0]
          and Image.open(io.BytesIO(base64.b64decode(r.json["images"][0]))).info.get(
              "parameters") == info["infotexts"][0],
          f"{name}: the PNG carries A1111's infotext")

# ---- the VAE choice (POST /options sd_vae reloads the edge model with it) ----
vaes = [v["model_name"] for v in api.get_sd_vae()]
check(vaes == ["full", "tiny"], f"sd-vae lists the model's decoders: {vaes}")
api.set_options({"sd_vae": "tiny"})
check(api.get_options()["sd_vae"] == "tiny", "options: sd_vae set to tiny")
p = dict(prompt="a tiny decoder", sampler_name="Euler", steps=4, width=64, height=64, seed=21,
         vae="tiny")
r = api.txt2img(**{x: v for x, v in p.items() if x != "vae"})
got = np.asarray(r.image.convert("RGB"))
check(r.info["sd_vae_name"] == "tiny" and np.array_equal(got, generate(21, a.split, p)),
      "sd_vae tiny: == hsd generate --split k --vae tiny")
api.set_options({"sd_vae": "Automatic"})
p["vae"] = "full"
r = api.txt2img(**{x: v for x, v in p.items() if x != "vae"})
check(api.get_options()["sd_vae"] == "full" and np.array_equal(
    np.asarray(r.image.convert("RGB")), generate(21, a.split, p)),
      "sd_vae Automatic: back to the full VAE")
bad = api.set_options({"sd_vae": "vae-ft-mse-840000"})
check("not found" in bad.get("detail", "") and api.get_options()["sd_vae"] == "full",
      f"an unknown VAE is refused: {bad.get('detail')}")

# ---- /progress during a run, then interrupt ----
def run_async(api_, out, **kw):
    try:
        out["r"] = api_.txt2img(**kw)
    except Exception as e:  # noqa: BLE001 - reported by the caller
        out["e"] = e


def watch(api_, steps, stop_after=None):
    """Starts a long txt2img, polls /progress; returns (samples, result, seconds)."""
    out, samples = {}, []
    t = threading.Thread(target=run_async, args=(api_, out), kwargs=dict(
        prompt="a long one", sampler_name="Euler", steps=steps, width=64, height=64, seed=3))
    t0 = time.time()
    t.start()
    interrupted_at = None
    while t.is_alive() and time.time() - t0 < 120:
        pr = api_.get_progress()
        samples.append(pr)
        st = pr["state"]
        if stop_after is not None and interrupted_at is None and st["sampling_step"] > stop_after:
            api_.interrupt()
            interrupted_at = st["sampling_step"]
        time.sleep(0.05)
    t.join(timeout=120)
    return samples, out, time.time() - t0, interrupted_at


steps = 150
samples, out, secs, _ = watch(api, steps)
mid = [s for s in samples if 0 < s["progress"] < 1 and s["state"]["job_count"] == 1
       and a.split < s["state"]["sampling_step"] < steps and s["eta_relative"] > 0]
check("r" in out and len(mid) >= 2,
      f"/progress live during a {steps}-step run ({secs:.1f} s): {len(mid)} of {len(samples)} "
      f"polls between the cloud's k and the end, e.g. "
      f"{json.dumps(mid[len(mid) // 2]) if mid else None}")
if mid:
    ps = [s["progress"] for s in mid]
    check(ps == sorted(ps), "progress never goes back")
idle = api.get_progress()
check(idle["progress"] == 0 and idle["state"]["job_count"] == 0, f"idle after: {idle}")

steps = 1000
samples, out, secs, at = watch(api, steps, stop_after=a.split + 3)
r = out.get("r")
h = r.info["hybrid"][0] if r else {}
check(r is not None and at is not None and len(r.images) == 1 and h.get("interrupted")
      and r.info["interrupted"] and a.split + h["edge_calls"] < steps,
      f"interrupt at step {at} of {steps}: returned after {secs:.1f} s with the partial image "
      f"({h.get('edge_calls')} edge calls after the cloud's {a.split})")

# ---- bad requests: 4xx with a message, and the daemon keeps serving ----
def refused(what, status, fn):
    try:
        res = fn()
    except RuntimeError as e:  # webuiapi: RuntimeError(status, text)
        code, text = e.args
    else:
        code, text = res.status_code, res.text
    try:
        detail = json.loads(text).get("detail", "")
    except ValueError:
        detail = ""
    check(code == status and detail, f"{what}: {code} {detail!r}")
    check(api.get_progress()["state"]["job_count"] == 0, f"{what}: still serving")


base = dict(prompt="x", steps=4, width=64, height=64, seed=1)
refused("unknown sampler", 422, lambda: api.txt2img(sampler_name="LMS Karras", **base))
refused("unknown scheduler", 422, lambda: api.txt2img(sampler_name="Euler", scheduler="Karras",
                                                     **base))
refused("size not a multiple of the model's", 422,
        lambda: api.txt2img(sampler_name="Euler", **{**base, "width": 80}))
refused("steps 0", 422, lambda: api.txt2img(sampler_name="Euler", **{**base, "steps": 0}))
refused("hires fix", 422, lambda: api.txt2img(sampler_name="Euler", enable_hr=True, **base))
refused("malformed JSON", 422, lambda: requests.post(url + "/txt2img", data='{"prompt": "x",'))
refused("not an object", 422, lambda: requests.post(url + "/txt2img", data="[1, 2]"))
refused("wrong type", 422, lambda: requests.post(url + "/txt2img", json={"steps": "many"}))
refused("oversized body (2 MiB, cap 1 MiB)", 413,
        lambda: requests.post(url + "/txt2img", data=b" " * (2 << 20)))
refused("unknown endpoint", 404, lambda: requests.get(url + "/img2img-nope"))
refused("wrong method", 405, lambda: requests.get(url + "/txt2img"))
r = api.txt2img(sampler_name="Euler", **base)
check(len(r.images) == 1 and r.info["hybrid"][0]["cloud_k"] == a.split,
      "after all that, a txt2img still works")

# ---- no cloud: local fallback, a full queue answers 503 + Retry-After ----
local = webuiapi.WebUIApi(host="127.0.0.1", port=a.port_local)
p = dict(prompt="alone", sampler_name="DPM++ 2M", steps=5, width=64, height=64, seed=9)
r = local.txt2img(**p)
h = r.info["hybrid"][0]
got = np.asarray(r.image.convert("RGB"))
check(h["fallback"] == "local" and h["cloud_k"] == 0 and h["fallback_reason"]
      and np.array_equal(got, generate(9, None, p)),
      f"no cloud: local fallback == hsd generate --model EDGE ({h['fallback_reason']})")
out = {}
t = threading.Thread(target=run_async, args=(local, out), kwargs=dict(
    prompt="long", sampler_name="Euler", steps=1000, width=64, height=64, seed=3))
t.start()
t0 = time.time()
while local.get_progress()["state"]["sampling_step"] < 2 and time.time() - t0 < 60:
    time.sleep(0.05)
busy = requests.post(f"http://127.0.0.1:{a.port_local}/sdapi/v1/txt2img", json=p)
ra = busy.headers.get("Retry-After", "")
check(busy.status_code == 503 and ra.isdigit() and int(ra) >= 1 and busy.json().get("detail"),
      f"queue full: {busy.status_code}, Retry-After {ra!r}, {busy.json().get('detail')!r}")
local.interrupt()
t.join(timeout=60)
check("r" in out and out["r"].info["hybrid"][0]["interrupted"],
      "the running request was interrupted (local steps)")

print(f"{passed} passed, {failed} failed")
raise SystemExit(1 if failed else 0)
