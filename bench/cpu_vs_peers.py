#!/usr/bin/env python3
"""hsd's CPU backend against diffusers on the same random SD1.5 and
BK-SDM-Tiny pipelines, the same thread count, in one run (bench/cpu_vs_peers.sh
is the entry point; it makes the pipelines first).

  python bench/cpu_vs_peers.py --work DIR --hsd build/host/hsd [--threads T] [--repeats R]

Measures, each in its own process (so a peak RSS belongs to one run):
  U-Net forward, batch 1 and 2, 64x64 latent: `hsd bench unet` and
    bench/diffusers_unet_cpu.py (one warm-up, median of R);
  text-to-image 512^2, 4 Euler steps, CFG 7.5: `hsd generate -v` (its load
    and decode times, the process's wall time and peak RSS) and
    bench/diffusers_cpu_pipeline.py (the same figures, in-process: its wall
    leaves out Python's start and imports, a few seconds in diffusers' favour);
  the edge pipeline: BK-SDM-Tiny U-Net + TAESD, same settings.
diffusers under bf16 autocast is added where the CPU has avx512_bf16 or
amx_bf16. Prints one JSON line per measurement, then a table with the
hsd / diffusers ratios (speed: diffusers time / hsd time; memory: hsd / diffusers).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmd):
    """Runs cmd; returns (stdout, stderr, wall ms, peak RSS MB of that process)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err)
        _, status, ru = os.wait4(p.pid, 0)
        wall = (time.perf_counter() - t0) * 1e3
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        o, e = out.read(), err.read()
    if p.returncode:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{e[-2000:]}")
    return o, e, wall, ru.ru_maxrss / 1024.0


def last_json(text):
    return json.loads([l for l in text.splitlines() if l.startswith("{")][-1])


def emit(rec):
    print(json.dumps(rec), flush=True)
    return rec


def hsd_generate(hsd, model, vae, threads):
    cmd = [hsd, "generate", "--model", model, "-p", "a photo of a cat", "--steps", "4",
           "--sampler", "euler", "--cfg", "7.5", "--seed", "1", "--threads", str(threads),
           "-o", os.path.join(tempfile.gettempdir(), "hsd_peers.png"), "-v", "-q"]
    if vae == "tiny":
        cmd += ["--vae", "tiny"]
    _, err, wall, rss = run(cmd)
    m = re.search(r"timing: load ([\d.]+) ms, text ([\d.]+) ms, \d+ U-Net calls ([\d.]+) ms, "
                  r"decode ([\d.]+) ms", err)
    if not m:
        sys.exit(f"no timing line from hsd generate:\n{err[-2000:]}")
    load, text, unet, decode = (float(x) for x in m.groups())
    return {"impl": "hsd", "vae": vae, "load_ms": load, "denoise_ms": text + unet,
            "decode_ms": decode, "wall_ms": round(wall, 1), "peak_rss_mb": round(rss, 1)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", required=True)
    ap.add_argument("--hsd", required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    py = sys.executable
    large, edge = os.path.join(a.work, "large"), os.path.join(a.work, "edge")
    flags = open("/proc/cpuinfo").read()
    bf16 = bool(re.search(r"\b(avx512_bf16|amx_bf16)\b", flags))
    cpu = re.search(r"model name\s*:\s*(.*)", flags)
    print(f"# cpu: {cpu.group(1) if cpu else '?'}, {os.cpu_count()} cores, threads {a.threads}, "
          f"bf16 autocast: {'yes' if bf16 else 'no (no avx512_bf16/amx_bf16)'}", flush=True)
    t = str(a.threads)
    res = {}
    for b in (1, 2):
        o, _, _, _ = run([a.hsd, "bench", "unet", "--model", large, "--batch", str(b),
                          "--threads", t, "--repeats", str(a.repeats)])
        res[("unet", b, "hsd")] = emit(dict(last_json(o), impl="hsd"))["ms"]
        for tag, extra in (("diffusers", []), ("diffusers-bf16", ["--bf16"]))[: 1 + bf16]:
            o, _, _, _ = run([py, os.path.join(HERE, "diffusers_unet_cpu.py"), "--model", large,
                              "--batch", str(b), "--threads", t, "--repeats", str(a.repeats)]
                             + extra)
            res[("unet", b, tag)] = emit(last_json(o))["ms"]
    for name, model, unet, vae in (("sd15", large, None, "full"), ("edge", edge, None, "tiny")):
        res[(name, "hsd")] = emit(dict(hsd_generate(a.hsd, model, vae, a.threads), pipe=name))
        for tag, extra in (("diffusers", []), ("diffusers-bf16", ["--bf16"]))[: 1 + bf16]:
            cmd = [py, os.path.join(HERE, "diffusers_cpu_pipeline.py"), "--model", large,
                   "--vae", vae, "--threads", t] + extra
            if name == "edge":
                cmd += ["--unet", os.path.join(edge, "unet")]
            o, _, _, _ = run(cmd)
            res[(name, tag)] = emit(dict(last_json(o), pipe=name))

    def row(label, ours, theirs, theirs_bf16, speed=True):
        ratio = (theirs / ours if speed else ours / theirs) if ours and theirs else float("nan")
        bf = f"{theirs_bf16:10.0f}" if theirs_bf16 is not None else "       n/a"
        print(f"{label:34s} {ours:10.0f} {theirs:10.0f} {bf} {ratio:8.2f}x")

    print(f"\n{'':34s} {'hsd':>10s} {'diffusers':>10s} {'diff.bf16':>10s} {'ratio':>9s}")
    for b in (1, 2):
        row(f"U-Net batch {b} (ms)", res[("unet", b, "hsd")], res[("unet", b, "diffusers")],
            res.get(("unet", b, "diffusers-bf16")))
    for name, label in (("sd15", "SD1.5"), ("edge", "edge BK-SDM-Tiny+TAESD")):
        h, d, db = res[(name, "hsd")], res[(name, "diffusers")], res.get((name, "diffusers-bf16"))
        for key, what, speed in (("decode_ms", "VAE decode (ms)", True),
                                 ("wall_ms", "t2i 4 steps wall (ms)", True),
                                 ("load_ms", "load (ms)", True),
                                 ("peak_rss_mb", "peak RSS (MB; ratio hsd/diff.)", False)):
            row(f"{label} {what}", h[key], d[key], db[key] if db else None, speed)


if __name__ == "__main__":
    main()
