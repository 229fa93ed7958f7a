#!/usr/bin/env python3
"""hsd_client.finish_with_diffusers: a handover finished by diffusers on the
edge model (the tiny test pipelines) matches the C edge's finish of the
same handover (wire_tool finish = hsd_edge_finish, whose pixels are those
of `hsd generate --edge-model EDGE --split k`, test_pyclient_serve), with
the tolerances of tests/unit/test_pipeline.c, where hsd and diffusers run
the same fp32 pipeline: final latent max|err| <= 1e-4 x max|ref| (per
U-Net call ~1e-6 relative, CFG amplifies it at most ~15x per step, the
samplers are contractive; a semantic slip -- wrong timestep, CFG row
order, sigma, history -- is > 1e-2) and every 8-bit channel within 1/255
(a value on a rounding boundary may land on either side).

The RESULT is the C reference's (wire_tool reference: what `hsd serve`
sends for a request run alone, bit for bit, as test_pyclient_serve shows).

  test_diffusers_finish.py WIRE_TOOL TEST_DATA
"""

import json
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from PIL import Image
    import hsd_client as hc
    from hsd_client import wire
    from hsd_client.diffusers_finish import (decode_with_diffusers, denoise_with_diffusers,
                                              finish_with_diffusers)
except ImportError as e:
    print(f"SKIP: {e} (scripts/setup.sh installs tests/oracle/requirements.txt)")
    sys.exit(77)

from harness import Report

tool, data = sys.argv[1:3]
large = os.path.join(data, "pipeline", "large")
edge = os.path.join(data, "pipeline", "edge")
tmp = tempfile.TemporaryDirectory()
report = Report()
torch.set_num_threads(2)
env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}

unet = UNet2DConditionModel.from_pretrained(os.path.join(edge, "unet"),
                                            low_cpu_mem_usage=False).eval()
vae = AutoencoderKL.from_pretrained(os.path.join(edge, "vae"), low_cpu_mem_usage=False).eval()
with open(os.path.join(edge, "scheduler", "scheduler_config.json")) as f:
    sched_config = json.load(f)

R = hc.GenerateRequest
for name, req in {
        "dpmpp-2m k=3 of 6, CFG": R(prompt="a lighthouse at dusk", negative_prompt="blurry",
                                    seed=11, width=64, height=64, steps=6, k=3),
        "dpmpp-2m k=1 of 4 (first-order history)": R(prompt="a red fox", seed=2, width=64,
                                                     height=64, steps=4, k=1),
        "ddim k=2 of 5, CFG off": R(prompt="a cat", seed=5, width=128, height=64, steps=5,
                                    k=2, sampler="ddim", cfg_scale=1.0),
        "euler k=2 of 4": R(prompt="a boat", seed=7, width=64, height=64, steps=4, k=2,
                            sampler="euler")}.items():
    gen, res_path, png = (os.path.join(tmp.name, n) for n in ("gen.bin", "res.bin", "g.png"))
    with open(gen, "wb") as f:
        f.write(wire.encode_generate(req, 1, False))
    subprocess.run([tool, "reference", large, gen, res_path], check=True, timeout=120, env=env)
    res = hc.decode_reply(open(res_path, "rb").read())
    latent = denoise_with_diffusers(res, req, unet, sched_config)
    rgb = decode_with_diffusers(latent, vae)
    lat_path = os.path.join(tmp.name, "lat.f32")
    subprocess.run([tool, "finish", edge, gen, res_path, png, lat_path], check=True,
                   timeout=120, env=env)
    want_lat = np.fromfile(lat_path, "<f4").reshape(res.latent.shape)
    want = np.asarray(Image.open(png).convert("RGB"))
    err = float(np.abs(latent - want_lat).max())
    bound = 1e-4 * float(np.abs(want_lat).max())
    worst = int(np.abs(rgb.astype(int) - want.astype(int)).max()) if rgb.shape == want.shape \
        else 256
    report.check(err <= bound and worst <= 1,
                 f"{name}: diffusers finish vs the C edge's: latent max|err| {err:.2e} "
                 f"(bound {bound:.2e}), 8-bit image {rgb.shape} max |diff| {worst}/255",
                 f"shapes {rgb.shape} {want.shape}")

req = R(prompt="a cat", steps=4, k=2, width=64, height=64, sampler="euler-a")
with open(os.path.join(tmp.name, "gen.bin"), "wb") as f:
    f.write(wire.encode_generate(req, 1, False))
subprocess.run([tool, "reference", large, os.path.join(tmp.name, "gen.bin"),
                os.path.join(tmp.name, "res.bin")], check=True, timeout=120, env=env)
try:
    finish_with_diffusers(hc.decode_reply(open(os.path.join(tmp.name, "res.bin"), "rb").read()),
                          req, unet, vae, sched_config)
    report.bad("euler-a: finished, though its generator state is not mapped")
except hc.InvalidRequest as e:
    report.ok(f"euler-a refused: {e}")
report.finish()
