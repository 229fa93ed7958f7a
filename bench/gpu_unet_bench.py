#!/usr/bin/env python3
"""The U-Net forward of hsd against PyTorch on one card, in one run: the "GPU
U-Net" row of docs/architecture.md §7 (>= 1.5x torch.compile's throughput at batch 16,
>= 1.5x diffusers eager at batch 2).

Model: an SD 1.5-config UNet2DConditionModel with random weights (built by
bench/gpu_parity.py's builder into WORK/<config>/unet, so a folder that
gpu_parity.py made is reused), or --model DIR. Inputs: 64x64 latents
(512x512 images), 77x768 context, a different timestep per row.

For each batch size (--batches, default 1,2,8,16,32):
  eager    diffusers fp16, default attention processor (SDPA), NCHW
  compile  torch.compile(mode="max-autotune", fullgraph=True) fp16,
           channels_last, inductor's conv_1x1_as_mm (the diffusers recipe;
           --coordinate-descent adds its coordinate-descent tuning). Compiled
           in child processes under --compile-budget seconds in all; a mode
           that fails falls back to the next of --compile-modes
           (max-autotune-no-cudagraphs, then reduce-overhead); when the budget
           runs out inside a max-autotune mode the other max-autotune mode is
           skipped (same autotuning cost) for reduce-overhead, and
           --compile-reserve keeps seconds for it. Every record says which
           mode it ran and why; the children's logs are OUT/compile_<mode>.log.
  hsd      `hsd bench unet --backend SPEC --model DIR --batch N`
Timing: torch: CUDA events around each forward, --warmup calls first, the L2
flushed before each timed call, median (and min) of --reps. hsd: its own
median of R after a warm-up (its JSON line: a host clock around
hsd_unet_forward, which also copies the fp32 inputs to the GPU and the
output back: ~12 MB at batch 32, under 1 ms). Peak memory: torch
max_memory_allocated() from a reset per batch (weights included); hsd's
peak_mem_mb (weights + activation arena) where it prints one. An
out-of-memory error at any batch is recorded ("status": "oom") and the next
batch runs.

  python bench/gpu_unet_bench.py [--hsd PATH] [--backend cuda:0] [--device cuda|cpu]
      [--model DIR | --work DIR] [--out DIR] [--json PATH] [--md PATH]
      [--batches 1,2,8,16,32] [--reps 10] [--warmup 3] [--small]
      [--no-compile] [--compile-budget S] [--compile-reserve S] [--time-budget S]
      [--compile-modes M1,M2,...] [--compile-batches 16,2,...] [--no-eager] [--no-hsd]
--device cpu: eager runs fp32 (fp16 CPU kernels are slow or missing), times
with a host clock and reports no peak memory; with --small --batches 1,2
--no-compile it is a quick test of this script, not a measurement.
Output: JSON lines (--json, appended; default OUT/unet_bench.jsonl), a
markdown table (--md; default OUT/unet_bench.md) also printed last.
Exit: 0 when every run either worked or hit out-of-memory (or was skipped
for the compile budget), 1 when a run failed otherwise, 77 --device cuda
without a GPU (or without torch/diffusers).
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time

from torch_timer import Timer

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

DEFAULT_MODES = "max-autotune,max-autotune-no-cudagraphs,reduce-overhead"


def parse_ints(text):
    return [int(x) for x in text.split(",") if x.strip()]


def unet_dir(model):
    d = os.path.join(model, "unet")
    return d if os.path.isdir(d) else model


def device_name(torch, device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return f"cpu: {line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return "cpu"


def is_oom(e):
    import torch
    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    return (oom is not None and isinstance(e, oom)) or "out of memory" in str(e).lower()


def make_inputs(torch, config, n, hw, dtype, device, seed=0):
    g = torch.Generator().manual_seed(seed + n)
    sample = torch.randn(n, config.in_channels, hw, hw, generator=g).to(device, dtype)
    # A different timestep per row, as the service batches requests.
    t = torch.tensor([999 - (40 * i) % 1000 for i in range(n)], dtype=torch.int64, device=device)
    ctx = torch.randn(n, 77, config.cross_attention_dim, generator=g).to(device, dtype)
    if device.type == "cuda":
        sample = sample.contiguous()
    return sample, t, ctx


def record(impl, n, times, device, peak_mb, **extra):
    ms = statistics.median(times)
    rec = {"bench": "gpu_unet", "impl": impl, "batch": n, "status": "ok", "ms": round(ms, 4),
           "ms_min": round(min(times), 4), "reps": len(times),
           "images_steps_per_s": round(n * 1e3 / ms, 3), "peak_mem_mb": peak_mb, "device": device}
    rec.update(extra)
    return rec


def peak_mb(torch, device, timer=None):
    """Peak allocated MiB since the last reset, less the timer's L2-flush buffer."""
    if device.type != "cuda":
        return None
    flush = timer.flush.numel() if timer is not None and timer.flush is not None else 0
    return round((torch.cuda.max_memory_allocated(device) - flush) / 2**20, 1)


def load_unet(torch, model, dtype, device):
    import diffusers
    from diffusers import UNet2DConditionModel
    diffusers.utils.logging.set_verbosity_error()
    return UNet2DConditionModel.from_pretrained(unet_dir(model), torch_dtype=dtype).to(device).eval()


# ---- torch eager ---------------------------------------------------------------------------

def bench_eager(torch, args, device, dev_name, dtype):
    import gc
    model = load_unet(torch, args.model, dtype, device)
    timer = Timer(torch, device)
    out = []
    for n in args.batches:
        try:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            x, t, c = make_inputs(torch, model.config, n, args.hw, dtype, device)
            with torch.inference_mode():
                times = timer.run(lambda: model(x, t, encoder_hidden_states=c), args.warmup, args.reps)
            rec = record("eager", n, times, dev_name, peak_mb(torch, device, timer),
                         dtype=str(dtype).replace("torch.", ""),
                         attention=type(model.attn_processors[next(iter(model.attn_processors))]).__name__)
        except Exception as e:  # noqa: BLE001 - OOM is a result; anything else is reported too
            rec = {"bench": "gpu_unet", "impl": "eager", "batch": n, "device": dev_name,
                   "status": "oom" if is_oom(e) else "error", "error": str(e).splitlines()[0][:300]}
        x = t = c = None
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        out.append(rec)
        yield rec
    del model
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# ---- torch.compile (child processes) ---------------------------------------------------------

def compile_worker(args):
    """Runs in a child: compile in one mode, time each batch, one JSON line per batch.

    Exit 3 when a batch fails for another reason than out-of-memory (the
    parent then tries the next mode on the batches left).
    """
    import gc
    import torch
    device = torch.device(args.device)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    dev_name = device_name(torch, device)
    ind = torch._inductor.config
    ind.conv_1x1_as_mm = True
    recipe = "channels_last+conv_1x1_as_mm"
    if args.coordinate_descent:
        ind.coordinate_descent_tuning = True
        ind.coordinate_descent_check_all_directions = True
        ind.epilogue_fusion = False
        recipe += "+coordinate_descent"
    model = load_unet(torch, args.model, dtype, device).to(memory_format=torch.channels_last)
    compiled = torch.compile(model, mode=args.worker_mode, fullgraph=True, dynamic=False)
    timer = Timer(torch, device)
    mark = getattr(getattr(torch, "compiler", None), "cudagraph_mark_step_begin", None)

    for n in args.batches:
        base = {"bench": "gpu_unet", "impl": "compile", "batch": n, "device": dev_name,
                "mode": args.worker_mode, "recipe": recipe}
        try:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            x, t, c = make_inputs(torch, model.config, n, args.hw, dtype, device)
            x = x.contiguous(memory_format=torch.channels_last)

            def fwd():
                if mark:
                    mark()
                return compiled(x, t, encoder_hidden_states=c)
            t0 = time.perf_counter()
            with torch.inference_mode():
                fwd()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                compile_s = time.perf_counter() - t0
                times = timer.run(fwd, args.warmup, args.reps)
            rec = record("compile", n, times, dev_name, peak_mb(torch, device, timer), mode=args.worker_mode,
                         recipe=recipe, compile_s=round(compile_s, 1))
        except Exception as e:  # noqa: BLE001
            if not is_oom(e):
                base.update(status="error", error=f"{type(e).__name__}: {str(e).splitlines()[0][:300]}")
                print(json.dumps(base), flush=True)
                return 3
            rec = dict(base, status="oom", error=str(e).splitlines()[0][:300])
        print(json.dumps(rec), flush=True)
        x = t = c = None
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return 0


def bench_compile(args, log):
    """Yields one record per batch of --compile-batches (ok, oom, error or skipped)."""
    budget = args.compile_budget
    if args.time_budget:
        # What is left of the whole run's budget, less a margin for the report.
        budget = min(budget, args.t_start + args.time_budget - 15 - time.monotonic())
    deadline = time.monotonic() + budget
    modes = [m for m in args.compile_modes.split(",") if m]
    pending = list(args.compile_batches)
    done_notes = []
    i = 0
    while pending and i < len(modes):
        mode = modes[i]
        left = deadline - time.monotonic()
        if left < args.compile_min_s:
            done_notes.append(f"{max(left, 0):.0f} s of the compile budget left, under --compile-min-s")
            break
        if mode.startswith("max-autotune") and any(not m.startswith("max-autotune") for m in modes[i:]):
            # Keep --compile-reserve seconds for the cheaper fallback mode.
            left = max(left - args.compile_reserve, args.compile_min_s)
        cmd = [sys.executable, os.path.abspath(__file__), "--worker-compile", mode,
               "--model", args.model, "--device", args.device, "--hw", str(args.hw),
               "--batches", ",".join(map(str, pending)), "--reps", str(args.reps),
               "--warmup", str(args.warmup)] + (["--coordinate-descent"] if args.coordinate_descent else [])
        log(f"compile: mode {mode}, batches {pending}, {left:.0f} s for it")
        t0 = time.monotonic()
        # Output to files, not pipes: inductor's compile workers inherit them
        # and can keep a pipe open for a while after the child is killed.
        out_path = os.path.join(args.out, f"compile_{mode}.out")
        err_path = os.path.join(args.out, f"compile_{mode}.log")
        with open(out_path, "w") as fo, open(err_path, "w") as fe:
            p = subprocess.Popen(cmd, stdout=fo, stderr=fe, text=True,
                                 start_new_session=True)  # its own group: killed as one
            timed_out = False
            try:
                p.wait(timeout=left)
            except subprocess.TimeoutExpired:
                timed_out = True
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
        out, err = open(out_path).read(), open(err_path).read()
        spent = time.monotonic() - t0
        failed_batch = None
        for line in out.splitlines():
            if not line.startswith("{"):
                continue
            rec = json.loads(line)
            if rec.get("status") == "error":
                failed_batch = rec
                continue
            if i > 0:
                rec["fallback_from"] = modes[:i]
                rec["fallback_why"] = "; ".join(done_notes)
            pending.remove(rec["batch"])
            yield rec
        if timed_out:
            done_notes.append(f"{mode}: the compile budget ran out after {spent:.0f} s")
            nxt = i + 1
            if mode.startswith("max-autotune"):
                while nxt < len(modes) and modes[nxt].startswith("max-autotune"):
                    nxt += 1  # same autotuning cost: would time out too
            i = nxt
        elif p.returncode != 0:
            last = (err or "").strip().splitlines()
            why = failed_batch["error"] if failed_batch else \
                f"rc {p.returncode}: {last[-1] if last else ''} (log {err_path})"
            at = f" at batch {failed_batch['batch']}" if failed_batch else ""
            done_notes.append(f"{mode} failed{at}: {why}")
            log(f"compile: {done_notes[-1]}")
            i += 1
        else:
            i += 1
    for n in pending:
        yield {"bench": "gpu_unet", "impl": "compile", "batch": n, "status": "skipped",
               "error": "; ".join(done_notes) or "no compile mode left"}


# ---- hsd -----------------------------------------------------------------------------------

def hsd_backend_args(hsd, spec):
    return ["--backend", spec]


def bench_hsd(args, dev_name):
    extra = hsd_backend_args(args.hsd, args.backend)
    for n in args.batches:
        base = {"bench": "gpu_unet", "impl": "hsd", "batch": n, "device": dev_name,
                "backend_spec": args.backend}
        if extra is None:
            yield dict(base, status="error", error=f"this hsd ({args.hsd}) has no --backend flag")
            continue
        cmd = [args.hsd, "bench", "unet", "--model", args.model, "--batch", str(n),
               "--height", str(args.hw), "--width", str(args.hw),
               "--repeats", str(args.reps)] + extra
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.hsd_timeout)
        except subprocess.TimeoutExpired:
            yield dict(base, status="error", error=f"timed out after {args.hsd_timeout} s")
            continue
        line = next((ln for ln in reversed(p.stdout.splitlines()) if ln.startswith("{")), None)
        if p.returncode != 0 or not line:
            msg = " | ".join((p.stderr or p.stdout).strip().splitlines()[-2:])
            oom = "out of memory" in msg.lower() or "HSD_ERR_NOMEM" in msg or "cudaErrorMemoryAllocation" in msg
            yield dict(base, status="oom" if oom else "error", error=f"rc {p.returncode}: {msg}")
            continue
        h = json.loads(line)
        ms = float(h["ms"])
        yield dict(base, status="ok", ms=ms, ms_min=h.get("ms_min"), reps=h.get("repeats"),
                   images_steps_per_s=round(n * 1e3 / ms, 3), peak_mem_mb=h.get("peak_mem_mb"),
                   backend=h.get("backend"), hsd=h)


# ---- report --------------------------------------------------------------------------------

def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def cell(r, key, spec):
    if r is None:
        return "-"
    if r.get("status") != "ok":
        return r.get("status", "?")
    return fmt(r.get(key), spec)


def table(res, batches, dev_name, header):
    lines = [header, "",
             "| batch | eager ms | eager img-steps/s | eager peak MiB | compile ms | compile mode "
             "| compile peak MiB | hsd ms | hsd img-steps/s | hsd peak MiB | hsd vs eager | hsd vs compile |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    comps = []
    for n in batches:
        e, c, h = (res.get((k, n)) for k in ("eager", "compile", "hsd"))
        se = sc = None
        if h and h.get("status") == "ok":
            if e and e.get("status") == "ok":
                se = e["ms"] / h["ms"]
            if c and c.get("status") == "ok":
                sc = c["ms"] / h["ms"]
        comps.append({"bench": "gpu_unet", "impl": "compare", "batch": n, "device": dev_name,
                      "hsd_vs_eager": None if se is None else round(se, 3),
                      "hsd_vs_compile": None if sc is None else round(sc, 3)})
        mode = c.get("mode", "-") if c and c.get("status") == "ok" else "-"
        lines.append(f"| {n} | {cell(e, 'ms', '.2f')} | {cell(e, 'images_steps_per_s', '.1f')} | "
                     f"{cell(e, 'peak_mem_mb', '.0f')} | {cell(c, 'ms', '.2f')} | {mode} | "
                     f"{cell(c, 'peak_mem_mb', '.0f')} | {cell(h, 'ms', '.2f')} | "
                     f"{cell(h, 'images_steps_per_s', '.1f')} | {cell(h, 'peak_mem_mb', '.0f')} | "
                     f"{fmt(se, '.2f') + 'x' if se else '-'} | {fmt(sc, '.2f') + 'x' if sc else '-'} |")
    lines.append("")
    lines.append("ms: median per U-Net forward; img-steps/s = batch / (ms / 1000): U-Net rows per "
                 "second per step (a CFG image takes 2 rows); hsd vs X = X ms / hsd ms (> 1: hsd "
                 "faster). Peak MiB: torch max_memory_allocated (less the L2-flush buffer), hsd peak_mem_mb (its JSON line: weights, arena, workspaces).")
    for r in res.values():
        if r.get("status") not in ("ok", None):
            lines.append(f"- {r['impl']} batch {r['batch']}: {r['status']}: {r.get('error', '')}")
        elif r.get("fallback_from"):
            lines.append(f"- compile batch {r['batch']}: ran in {r['mode']} after "
                         f"{', '.join(r['fallback_from'])} ({r.get('fallback_why', '')})")
    by = {c["batch"]: c for c in comps}
    tgt = []
    if 16 in by:
        v = by[16]["hsd_vs_compile"]
        tgt.append(f"hsd vs torch.compile at batch 16: {fmt(v, '.2f') + 'x' if v else 'n/a'} (target >= 1.5x: "
                   f"{'met' if v and v >= 1.5 else 'not met' if v else 'not measured'})")
    if 2 in by:
        v = by[2]["hsd_vs_eager"]
        tgt.append(f"hsd vs eager at batch 2: {fmt(v, '.2f') + 'x' if v else 'n/a'} (target >= 1.5x: "
                   f"{'met' if v and v >= 1.5 else 'not met' if v else 'not measured'})")
    if tgt:
        lines += ["", "docs/architecture.md §7 targets: " + "; ".join(tgt)]
    return lines, comps


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--hsd", default=os.environ.get("HSD", os.path.join(REPO, "build", "host", "hsd")))
    ap.add_argument("--backend", default="cuda:0", help="hsd's --backend")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--model", help="diffusers folder (with unet/); default: build one in --work")
    ap.add_argument("--work", default=os.path.join(REPO, "out", "gpu-parity"),
                    help="where the random model is built/reused (gpu_parity.py's --out)")
    ap.add_argument("--out", default=os.path.join(REPO, "out", "gpu-unet-bench"))
    ap.add_argument("--json", help="append JSON lines here (default OUT/unet_bench.jsonl, rewritten)")
    ap.add_argument("--md", help="markdown table (default OUT/unet_bench.md)")
    ap.add_argument("--batches", default="1,2,8,16,32")
    ap.add_argument("--hw", type=int, default=None, help="latent size (default 64; --small 32)")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--small", action="store_true", help="narrow model: a quick test of the script")
    ap.add_argument("--seed", type=int, default=1506, help="model seed (as gpu_parity.py)")
    ap.add_argument("--no-eager", action="store_true")
    ap.add_argument("--no-hsd", action="store_true")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--compile-budget", type=float, default=240, help="seconds for all compiles")
    ap.add_argument("--time-budget", type=float,
                    help="seconds for this whole run: torch.compile gets at most what eager and "
                         "hsd leave of it (bench/device-check.sh)")
    ap.add_argument("--compile-min-s", type=float, default=30,
                    help="do not start a compile mode with less budget than this")
    ap.add_argument("--compile-modes", default=DEFAULT_MODES)
    ap.add_argument("--compile-reserve", type=float, default=0,
                    help="seconds of the budget kept for a cheaper fallback mode (reduce-overhead) "
                         "while a max-autotune mode compiles")
    ap.add_argument("--compile-batches", help="batches to compile, in this order "
                    "(default: --batches with 16 then 2 first, the targets' batches)")
    ap.add_argument("--coordinate-descent", action="store_true",
                    help="inductor coordinate-descent tuning too (slower compile)")
    ap.add_argument("--hsd-timeout", type=int, default=180, help="seconds per hsd bench unet run")
    ap.add_argument("--worker-compile", metavar="MODE", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.t_start = time.monotonic()
    args.batches = parse_ints(args.batches)
    if args.hw is None:
        args.hw = 32 if args.small else 64
    if args.worker_compile:
        args.worker_mode = args.worker_compile
        return compile_worker(args)
    if args.compile_batches:
        args.compile_batches = parse_ints(args.compile_batches)
    else:
        first = [b for b in (16, 2) if b in args.batches]
        args.compile_batches = first + [b for b in args.batches if b not in first]

    try:
        import torch
        import diffusers
    except Exception as e:  # noqa: BLE001
        print(f"gpu_unet_bench: torch/diffusers unavailable ({e}): skipped")
        return 77
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_unet_bench: no GPU (torch.cuda.is_available() is False): skipped")
        return 77
    dev_name = device_name(torch, device)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    if not args.model:
        import gpu_parity
        cfg = gpu_parity.model_configs(args.small)
        args.model = os.path.join(args.work, cfg["name"])
        t0 = time.perf_counter()
        gpu_parity.build_unet(os.path.join(args.model, "unet"), cfg["unet"], args.seed)
        print(f"gpu_unet_bench: model {args.model} ({cfg['name']} config) ready in "
              f"{time.perf_counter() - t0:.1f} s")
    os.makedirs(args.out, exist_ok=True)
    json_path = args.json or os.path.join(args.out, "unet_bench.jsonl")
    md_path = args.md or os.path.join(args.out, "unet_bench.md")
    jf = open(json_path, "a" if args.json else "w")
    header = (f"U-Net forward, {args.hw}x{args.hw} latent ({8 * args.hw}x{8 * args.hw} images), "
              f"77 context tokens, {dev_name}; torch {torch.__version__}, diffusers "
              f"{diffusers.__version__}, {str(dtype).replace('torch.', '')}; hsd --backend {args.backend}; "
              f"model {args.model}")
    print("gpu_unet_bench: " + header)

    def log(msg):
        print(f"gpu_unet_bench: {msg}", flush=True)

    res, failed = {}, False

    def keep(rec):
        nonlocal failed
        res[(rec["impl"], rec["batch"])] = rec
        jf.write(json.dumps(rec) + "\n")
        jf.flush()
        failed |= rec.get("status") == "error"
        st = rec.get("status")
        extra = (f"{rec['ms']:.2f} ms, {rec['images_steps_per_s']:.1f} img-steps/s, peak "
                 f"{fmt(rec.get('peak_mem_mb'), '.0f')} MB" + (f", {rec['mode']}" if rec.get("mode") else "")
                 + (f", compile {rec['compile_s']} s" if rec.get("compile_s") is not None else "")
                 if st == "ok" else f"{st}: {rec.get('error', '')}")
        log(f"{rec['impl']:<7} batch {rec['batch']:>3}: {extra}")

    if not args.no_eager:
        for rec in bench_eager(torch, args, device, dev_name, dtype):
            keep(rec)
    if not args.no_hsd:
        for rec in bench_hsd(args, dev_name):
            keep(rec)
    if not args.no_compile:
        for rec in bench_compile(args, log):
            keep(rec)
    lines, comps = table(res, args.batches, dev_name, header)
    for c in comps:
        jf.write(json.dumps(c) + "\n")
    jf.close()
    with open(md_path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"gpu_unet_bench: JSON lines in {json_path}, table in {md_path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
