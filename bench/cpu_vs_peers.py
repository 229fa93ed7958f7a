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
Where the CPU has avx512_bf16 or amx_bf16, bf16 columns are added: hsd
--cpu-precision bf16 against diffusers under bf16 autocast (elsewhere the
table says why they are left out: both would run bf16 without native
instructions, slower than fp32, so their times mean nothing). Prints one JSON line per measurement, then a table with the
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


def hsd_generate(hsd, model, vae, threads, extra=()):
    cmd = [hsd, "generate", "--model", model, "-p", "a photo of a cat", "--steps", "4",
           "--sampler", "euler", "--cfg", "7.5", "--seed", "1", "--threads", str(threads),
           "-o", os.path.join(tempfile.gettempdir(), "hsd_peers.png"), "-v", "-q"]
    if vae == "tiny":
        cmd += ["--vae", "tiny"]
    cmd += list(extra)
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
    # hsd's modes: fp32 always, bf16 (--cpu-precision) beside diffusers' autocast.
    modes = (("hsd", []), ("hsd-bf16", ["--cpu-precision", "bf16"]))[: 1 + bf16]
    for b in (1, 2):
        for tag, extra in modes:
            o, _, _, _ = run([a.hsd, "bench", "unet", "--model", large, "--batch", str(b),
                              "--threads", t, "--repeats", str(a.repeats)] + extra)
            res[("unet", b, tag)] = emit(dict(last_json(o), impl=tag))["ms"]
        for tag, extra in (("diffusers", []), ("diffusers-bf16", ["--bf16"]))[: 1 + bf16]:
            o, _, _, _ = run([py, os.path.join(HERE, "diffusers_unet_cpu.py"), "--model", large,
                              "--batch", str(b), "--threads", t, "--repeats", str(a.repeats)]
                             + extra)
            res[("unet", b, tag)] = emit(last_json(o))["ms"]
    for name, model, unet, vae in (("sd15", large, None, "full"), ("edge", edge, None, "tiny")):
        for tag, extra in modes:
            rec = dict(hsd_generate(a.hsd, model, vae, a.threads, extra), pipe=name, impl=tag)
            res[(name, tag)] = emit(rec)
        for tag, extra in (("diffusers", []), ("diffusers-bf16", ["--bf16"]))[: 1 + bf16]:
            cmd = [py, os.path.join(HERE, "diffusers_cpu_pipeline.py"), "--model", large,
                   "--vae", vae, "--threads", t] + extra
            if name == "edge":
                cmd += ["--unet", os.path.join(edge, "unet")]
            o, _, _, _ = run(cmd)
            res[(name, tag)] = emit(dict(last_json(o), pipe=name))

    def ratio(ours, theirs, speed):
        return (theirs / ours if speed else ours / theirs) if ours and theirs else float("nan")

    def row(label, vals, speed=True):
        # vals: hsd, diffusers[, hsd bf16, diffusers bf16]
        line = f"{label:34s} {vals[0]:10.0f} {vals[1]:10.0f} {ratio(vals[0], vals[1], speed):8.2f}x"
        if bf16:
            line += f" {vals[2]:10.0f} {vals[3]:10.0f} {ratio(vals[2], vals[3], speed):8.2f}x"
        print(line)

    head = f"\n{'':34s} {'hsd':>10s} {'diffusers':>10s} {'ratio':>9s}"
    if bf16:
        head += f" {'hsd.bf16':>10s} {'diff.bf16':>10s} {'bf16 ratio':>9s}"
    print(head)
    tags = ("hsd", "diffusers", "hsd-bf16", "diffusers-bf16")[: 2 + 2 * bf16]
    for b in (1, 2):
        row(f"U-Net batch {b} (ms)", [res[("unet", b, g)] for g in tags])
    for name, label in (("sd15", "SD1.5"), ("edge", "edge BK-SDM-Tiny+TAESD")):
        for key, what, speed in (("decode_ms", "VAE decode (ms)", True),
                                 ("wall_ms", "t2i 4 steps wall (ms)", True),
                                 ("load_ms", "load (ms)", True),
                                 ("peak_rss_mb", "peak RSS (MB; ratio hsd/diff.)", False)):
            row(f"{label} {what}", [res[(name, g)][key] for g in tags], speed)
    if not bf16:
        print("# bf16 columns (hsd --cpu-precision bf16 vs diffusers bf16 autocast) skipped: "
              "this CPU has neither avx512_bf16 nor amx_bf16, so both would run bf16 slower "
              "than fp32 (docs/cpu-precision.md)")


if __name__ == "__main__":
    main()
