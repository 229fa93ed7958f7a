#!/usr/bin/env python3
"""One VAE decode, hsd against diffusers on the same weights and latent, in one run.

  python bench/vae_vs_diffusers.py --vae DIR [--hsd build/host/hsd] [--size 512]
      [--batch 1] [--threads T] [--repeats 2]

DIR is an AutoencoderKL or AutoencoderTiny folder (config.json + weights),
e.g. build/full/large/vae or build/full/large/vae_tiny from
tests/oracle/make_full_pipeline.py. Both sides read the fp16 files as fp32.
hsd: `hsd run-vae -v` in its own process per repeat (the decode time it
logs, the process's peak RSS); diffusers: vae.decode in this process after
one warm-up (its peak RSS is this process's, so it includes torch itself).
Prints one JSON line per side with the median decode ms and the load
average, then the ratio and the max |hsd - diffusers| relative to
max |diffusers| of the images. Results: bench/RESULTS.md ("CPU
convolutions"); bench/cpu_vs_peers.sh times the decode inside whole
text-to-image runs instead.
"""

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import tempfile
import time

import torch
from safetensors.torch import load_file, save_file

import diffusers
from diffusers import AutoencoderKL, AutoencoderTiny


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vae", required=True)
    ap.add_argument("--hsd", default="build/host/hsd")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    diffusers.utils.logging.set_verbosity_error()
    cfg = json.load(open(os.path.join(a.vae, "config.json")))
    tiny = cfg.get("_class_name") == "AutoencoderTiny"
    cls = AutoencoderTiny if tiny else AutoencoderKL
    vae = cls.from_pretrained(a.vae, torch_dtype=torch.float32).eval()
    g = torch.Generator().manual_seed(0)
    lat = torch.randn(a.batch, cfg.get("latent_channels", 4), a.size // 8, a.size // 8,
                      generator=g)
    tmp = tempfile.mkdtemp(prefix="hsd_vae_bench_")
    lin, lout = os.path.join(tmp, "latent.safetensors"), os.path.join(tmp, "image.safetensors")
    save_file({"latent": lat}, lin)

    ms, rss = [], 0.0
    for _ in range(a.repeats):
        # /usr/bin/time: the peak RSS of hsd alone (the rusage of a child
        # forked from this process counts the torch process it was forked from).
        cmd = ["/usr/bin/time", "-f", "maxrss_kb %M", a.hsd, "run-vae", "--model", a.vae,
               "--in", lin, "--out", lout, "--threads", str(a.threads), "-v"]
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        _, err = p.communicate()
        if p.returncode:
            raise SystemExit(f"hsd failed: {err[-2000:]}")
        m = re.search(r"decode ([\d.]+) ms", err)
        ms.append(float(m.group(1)))
        rss = max(rss, float(re.search(r"maxrss_kb (\d+)", err).group(1)) / 1024.0)
    hsd_ms = statistics.median(ms)
    print(json.dumps({"impl": "hsd", "vae": "tiny" if tiny else "kl", "size": a.size,
                      "batch": a.batch, "threads": a.threads, "decode_ms": round(hsd_ms, 1),
                      "runs_ms": ms, "peak_rss_mb": round(rss, 1),
                      "loadavg": os.getloadavg()[0]}), flush=True)

    with torch.inference_mode():
        ref = vae.decode(lat).sample  # warm-up, and the reference image
        t = []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            vae.decode(lat)
            t.append((time.perf_counter() - t0) * 1e3)
    d_ms = statistics.median(t)
    print(json.dumps({"impl": "diffusers", "vae": "tiny" if tiny else "kl", "size": a.size,
                      "batch": a.batch, "threads": a.threads, "decode_ms": round(d_ms, 1),
                      "runs_ms": [round(x, 1) for x in t],
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                           / 1024.0, 1),
                      "loadavg": os.getloadavg()[0]}), flush=True)
    got = load_file(lout)["image"]
    shutil.rmtree(tmp)
    err = ((got - ref).abs().max() / ref.abs().max()).item()
    print(f"hsd {hsd_ms:.0f} ms, diffusers {d_ms:.0f} ms: {d_ms / hsd_ms:.2f}x; "
          f"max|hsd - diffusers| / max|diffusers| = {err:.2e}")


if __name__ == "__main__":
    main()
