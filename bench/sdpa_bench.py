#!/usr/bin/env python3
"""PyTorch scaled_dot_product_attention on the SD1.5 attention shapes: the
peer of hsd_attn_fwd_* in bench_kernels (same shapes, same layout, same
timing rules, same JSON lines).

Layout: q, k, v are [n, t, heads*d] fp16 tensors (the NHWC projections),
viewed as [n, heads, t, d] by view + transpose, no copy: what our kernels
read. Backends: flash (the issue's baseline), and where they run also
cuDNN and memory-efficient attention, each forced with sdpa_kernel.

Timing: CUDA events around each call, 3 warm-up calls, the L2 flushed (a
write of 2x its size) before each timed repeat, median of --reps (>= 20).

  python3 bench/sdpa_bench.py [--json PATH] [--reps 30]
Prints a table and, with --json, JSON lines:
  {"bench": "sdpa", "device": ..., "op": "attention", "case": ..., "version":
   "torch_sdpa_flash", "ms": ..., "tflops": ..., "reps": ...}
Without torch or a GPU: prints "no GPU: skipped" and exits 77.
"""
import argparse
import json
import math
import statistics
import sys

from torch_timer import Timer

# The shapes and case names of bench_kernels.cu (k_att).
SHAPES = [
    ("self", 2, 8, 40, 4096, 4096),
    ("self", 2, 8, 80, 1024, 1024),
    ("self", 2, 8, 160, 256, 256),
    ("self", 2, 8, 160, 64, 64),
    ("cross", 2, 8, 40, 4096, 77),
    ("cross", 2, 8, 80, 1024, 77),
    ("cross", 2, 8, 160, 256, 77),
    ("cross", 2, 8, 160, 64, 77),
    ("self", 1, 8, 64, 16384, 16384),
    ("self", 2, 10, 64, 4096, 4096),
    ("self", 2, 20, 64, 1024, 1024),
    ("cross", 2, 10, 64, 4096, 77),
    ("cross", 2, 20, 64, 1024, 77),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", help="write JSON lines here")
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args()
    reps = max(args.reps, 20)
    try:
        import torch
        import torch.nn.functional as F
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except Exception as e:  # noqa: BLE001 - any import failure means no torch here
        print(f"sdpa_bench: torch unavailable ({e}): no GPU: skipped")
        return 77
    if not torch.cuda.is_available():
        print("sdpa_bench: no GPU: skipped")
        return 77
    dev = torch.device("cuda")
    props = torch.cuda.get_device_properties(dev)
    name = props.name
    out = open(args.json, "w") if args.json else None
    print(f"sdpa_bench: {name}, torch {torch.__version__}, median of {reps}, L2 flushed")
    backends = [("torch_sdpa_flash", SDPBackend.FLASH_ATTENTION)]
    if hasattr(SDPBackend, "CUDNN_ATTENTION"):
        backends.append(("torch_sdpa_cudnn", SDPBackend.CUDNN_ATTENTION))
    backends.append(("torch_sdpa_efficient", SDPBackend.EFFICIENT_ATTENTION))

    timer = Timer(torch, dev)

    def timed(fn):
        return statistics.median(timer.run(fn, 3, reps))

    for kind, n, h, d, tq, tkv in SHAPES:
        case = f"{kind}_n{n}_h{h}_tq{tq}_tkv{tkv}_d{d}"
        flops = 4.0 * n * h * tq * tkv * d
        g = torch.Generator(device=dev).manual_seed(0)

        def mk(t):
            x = torch.rand((n, t, h * d), generator=g, device=dev, dtype=torch.float32) * 4 - 2
            return x.half().view(n, t, h, d).transpose(1, 2)  # [n, h, t, d], no copy

        q, k, v = mk(tq), mk(tkv), mk(tkv)
        for vname, backend in backends:
            try:
                with sdpa_kernel(backend):
                    F.scaled_dot_product_attention(q, k, v, scale=1.0 / math.sqrt(d))
                    ms = timed(lambda: F.scaled_dot_product_attention(q, k, v, scale=1.0 / math.sqrt(d)))
            except Exception as e:  # noqa: BLE001 - a backend that refuses a shape
                print(f"attention   {case:<34} {vname:<24} not available: {str(e).splitlines()[0][:80]}")
                continue
            tflops = flops / (ms * 1e-3) / 1e12
            print(f"attention   {case:<34} {vname:<24} {ms:9.4f} ms {tflops:8.1f} TFLOP/s")
            rec = {"bench": "sdpa", "device": name, "op": "attention", "case": case,
                   "version": vname, "ms": ms, "tflops": tflops, "reps": reps}
            if out:
                out.write(json.dumps(rec) + "\n")
                out.flush()
        del q, k, v
        torch.cuda.empty_cache()
    if out:
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
