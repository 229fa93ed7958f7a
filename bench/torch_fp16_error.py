#!/usr/bin/env python3
"""PyTorch's own fp16 error on the CUDA kernel tests' cases: the yardstick of
issue 5's criterion "fp16 error <= 2x that of a PyTorch fp16 computation of
the same op vs the fp32 result" (flash-attention's test rule).

For every case of tests/unit/test_cuda_{attention,conv2d,norm,eltwise}.c
(same case names, same input distributions; the lists below mirror those
files and must be kept in step with them), on the GPU:
  inputs drawn in fp32, rounded to fp16      (what both sides see)
  reference: the op in float64 on the rounded inputs (TF32 off)
  torch fp16: the op as a diffusers/transformers model runs it in fp16
    (F.scaled_dot_product_attention, F.conv2d + bias then + residual,
    F.group_norm then F.silu, F.layer_norm, hidden * F.gelu(gate), ...)
  error: max |fp16 - ref| and NMSE = sum (fp16-ref)^2 / sum ref^2
Each case is drawn with two seeds and the larger error kept (the C test's
inputs are fresh draws of the same distributions, not the same numbers).
The C tests read the output through HSD_TORCH_FP16_ERR_JSON.

  python3 bench/torch_fp16_error.py OUT.jsonl [--device cpu --small]
(--device cpu --small: a syntax/logic check of this script without a GPU,
on the small cases only; not a yardstick.)
One JSON object per line:
  {"op": "attention", "case": "self_n2_h8_tq4096_tkv4096_d40",
   "max_abs": ..., "nmse": ..., "max_ref": ..., "torch": "2.x"}
Without torch or a GPU: prints "no GPU: skipped" and exits 77.
"""
import json
import math
import sys

# ---- cases (mirror the C tests) ------------------------------------------------

# test_cuda_attention.c k_cases: kind, n, heads, d, t_q, t_kv, extra_ld
ATTENTION = [
    ("self", 2, 8, 40, 4096, 4096, 0),
    ("self", 2, 8, 80, 1024, 1024, 0),
    ("self", 2, 8, 160, 256, 256, 0),
    ("self", 2, 8, 160, 64, 64, 0),
    ("cross", 2, 8, 40, 4096, 77, 0),
    ("cross", 2, 8, 80, 1024, 77, 0),
    ("cross", 2, 8, 160, 256, 77, 0),
    ("cross", 2, 8, 160, 64, 77, 0),
    # SDXL-base at 1024x1024: 64-wide heads (10 at 64x64, 20 at 32x32)
    ("self", 2, 10, 64, 4096, 4096, 0),
    ("self", 2, 20, 64, 1024, 1024, 0),
    ("cross", 2, 10, 64, 4096, 77, 0),
    ("cross", 2, 20, 64, 1024, 77, 0),
    ("causal", 2, 20, 64, 77, 77, 0),
    ("packed", 2, 8, 80, 1024, 1024, 0),
    ("causal", 2, 12, 64, 77, 77, 0),
    ("packed", 1, 3, 59, 333, 333, 0),
    ("cross", 1, 2, 72, 100, 130, 8),
    ("causal", 1, 2, 59, 200, 200, 0),
    ("self", 1, 2, 128, 300, 300, 0),
    ("cross", 2, 4, 64, 1000, 77, 16),
    ("self", 1, 1, 40, 1, 1, 0),
    ("cross", 1, 5, 16, 37, 3, 3),
    ("self", 1, 1, 200, 50, 50, 0),
    ("self", 1, 2, 40, 150, 150, 0),
    ("cross", 1, 2, 80, 130, 77, 0),
    ("self", 1, 1, 160, 100, 100, 0),
    ("packed", 1, 2, 40, 200, 200, 0),
    ("self", 1, 2, 64, 16384, 16384, 0),
]

# test_cuda_conv2d.c k_cases: what, n, h, w, ci, co, k, stride, pad, pad_br, bias, residual
CONV = [
    ("conv_in", 2, 64, 64, 4, 320, 3, 1, 1, 0, 1, 0),
    ("res_conv1_64", 2, 64, 64, 320, 320, 3, 1, 1, 0, 1, 0),
    ("res_conv2_64", 2, 64, 64, 320, 320, 3, 1, 1, 0, 1, 1),
    ("down_64", 2, 64, 64, 320, 320, 3, 2, 1, 0, 1, 0),
    ("res_conv1_32a", 2, 32, 32, 320, 640, 3, 1, 1, 0, 1, 0),
    ("res_conv2_32", 2, 32, 32, 640, 640, 3, 1, 1, 0, 1, 1),
    ("shortcut_32a", 2, 32, 32, 320, 640, 1, 1, 0, 0, 1, 0),
    ("down_32", 2, 32, 32, 640, 640, 3, 2, 1, 0, 1, 0),
    ("res_conv1_16a", 2, 16, 16, 640, 1280, 3, 1, 1, 0, 1, 0),
    ("res_conv2_16", 2, 16, 16, 1280, 1280, 3, 1, 1, 0, 1, 1),
    ("shortcut_16a", 2, 16, 16, 640, 1280, 1, 1, 0, 0, 1, 0),
    ("down_16", 2, 16, 16, 1280, 1280, 3, 2, 1, 0, 1, 0),
    ("res_conv2_8", 2, 8, 8, 1280, 1280, 3, 1, 1, 0, 1, 1),
    ("up0_conv1_8", 2, 8, 8, 2560, 1280, 3, 1, 1, 0, 1, 0),
    ("up0_shortcut_8", 2, 8, 8, 2560, 1280, 1, 1, 0, 0, 1, 0),
    ("up1_conv1_16a", 2, 16, 16, 2560, 1280, 3, 1, 1, 0, 1, 0),
    ("up1_conv1_16b", 2, 16, 16, 1920, 1280, 3, 1, 1, 0, 1, 0),
    ("up1_shortcut_16a", 2, 16, 16, 2560, 1280, 1, 1, 0, 0, 1, 0),
    ("up1_shortcut_16b", 2, 16, 16, 1920, 1280, 1, 1, 0, 0, 1, 0),
    ("upsampler_32", 2, 32, 32, 1280, 1280, 3, 1, 1, 0, 1, 0),
    ("up2_conv1_32a", 2, 32, 32, 1920, 640, 3, 1, 1, 0, 1, 0),
    ("up2_conv1_32b", 2, 32, 32, 1280, 640, 3, 1, 1, 0, 1, 0),
    ("up2_conv1_32c", 2, 32, 32, 960, 640, 3, 1, 1, 0, 1, 0),
    ("up2_shortcut_32a", 2, 32, 32, 1920, 640, 1, 1, 0, 0, 1, 0),
    ("up2_shortcut_32b", 2, 32, 32, 1280, 640, 1, 1, 0, 0, 1, 0),
    ("up2_shortcut_32c", 2, 32, 32, 960, 640, 1, 1, 0, 0, 1, 0),
    ("upsampler_64", 2, 64, 64, 640, 640, 3, 1, 1, 0, 1, 0),
    ("up3_conv1_64a", 2, 64, 64, 960, 320, 3, 1, 1, 0, 1, 0),
    ("up3_conv1_64b", 2, 64, 64, 640, 320, 3, 1, 1, 0, 1, 0),
    ("up3_shortcut_64a", 2, 64, 64, 960, 320, 1, 1, 0, 0, 1, 0),
    ("up3_shortcut_64b", 2, 64, 64, 640, 320, 1, 1, 0, 0, 1, 0),
    ("proj_64", 2, 64, 64, 320, 320, 1, 1, 0, 0, 1, 1),
    ("proj_32", 2, 32, 32, 640, 640, 1, 1, 0, 0, 1, 0),
    ("proj_16", 2, 16, 16, 1280, 1280, 1, 1, 0, 0, 1, 0),
    ("proj_8", 2, 8, 8, 1280, 1280, 1, 1, 0, 0, 1, 0),
    ("conv_out", 2, 64, 64, 320, 4, 3, 1, 1, 0, 1, 0),
    # SDXL-base at 128x128 latents (test_cuda_conv2d.c's sdxl_* rows)
    ("sdxl_conv_in", 2, 128, 128, 4, 320, 3, 1, 1, 0, 1, 0),
    ("sdxl_res_conv2_128", 2, 128, 128, 320, 320, 3, 1, 1, 0, 1, 1),
    ("sdxl_down_128", 2, 128, 128, 320, 320, 3, 2, 1, 0, 1, 0),
    ("sdxl_res_conv1_64a", 2, 64, 64, 320, 640, 3, 1, 1, 0, 1, 0),
    ("sdxl_res_conv2_64", 2, 64, 64, 640, 640, 3, 1, 1, 0, 1, 1),
    ("sdxl_up1_conv1_64a", 2, 64, 64, 1920, 640, 3, 1, 1, 0, 1, 0),
    ("sdxl_upsampler_64", 2, 64, 64, 1280, 1280, 3, 1, 1, 0, 1, 0),
    ("sdxl_upsampler_128", 2, 128, 128, 640, 640, 3, 1, 1, 0, 1, 0),
    ("sdxl_up2_conv1_128a", 2, 128, 128, 960, 320, 3, 1, 1, 0, 1, 0),
    ("sdxl_up2_shortcut_128a", 2, 128, 128, 960, 320, 1, 1, 0, 0, 1, 0),
    ("sdxl_conv_out", 2, 128, 128, 320, 4, 3, 1, 1, 0, 1, 0),
    ("odd_ci20", 1, 13, 21, 20, 36, 3, 1, 1, 0, 1, 1),
    ("odd_s2", 1, 13, 21, 16, 24, 3, 2, 1, 0, 1, 0),
    ("vae_down", 1, 16, 12, 8, 8, 3, 2, 0, 1, 1, 0),
    ("nobias_1x1", 2, 5, 7, 24, 40, 1, 1, 0, 0, 0, 0),
    ("co3", 1, 9, 9, 32, 3, 3, 1, 1, 0, 1, 0),
    ("k5", 1, 10, 10, 8, 16, 5, 1, 2, 0, 1, 0),
    ("ci8_tail", 1, 6, 5, 8, 72, 3, 1, 1, 0, 0, 1),
    ("inplace", 1, 8, 8, 64, 64, 3, 1, 1, 0, 1, 1),
    ("small_3x3", 1, 9, 11, 32, 80, 3, 1, 1, 0, 1, 1),
    ("small_3x3_s2", 2, 12, 10, 64, 72, 3, 2, 1, 0, 1, 0),
    ("m_blocks", 2, 16, 16, 16, 64, 3, 1, 1, 0, 1, 1),
    ("small_1x1", 1, 10, 13, 40, 24, 1, 1, 0, 0, 1, 1),
]

# test_cuda_norm.c k_gn: what, n, hw, c, groups, eps, silu, big_mean
GROUP_NORM = [
    ("res_64", 2, 4096, 320, 32, 1e-5, 1, 0),
    ("res_32a", 2, 1024, 320, 32, 1e-5, 1, 0),
    ("res_32", 2, 1024, 640, 32, 1e-5, 1, 0),
    ("res_16a", 2, 256, 640, 32, 1e-5, 1, 0),
    ("res_16", 2, 256, 1280, 32, 1e-5, 1, 0),
    ("res_8", 2, 64, 1280, 32, 1e-5, 1, 0),
    ("up0_8", 2, 64, 2560, 32, 1e-5, 1, 0),
    ("up1_16a", 2, 256, 2560, 32, 1e-5, 1, 0),
    ("up1_16b", 2, 256, 1920, 32, 1e-5, 1, 0),
    ("up2_32a", 2, 1024, 1920, 32, 1e-5, 1, 0),
    ("up2_32b", 2, 1024, 1280, 32, 1e-5, 1, 0),
    ("up2_32c", 2, 1024, 960, 32, 1e-5, 1, 0),
    ("up3_64a", 2, 4096, 960, 32, 1e-5, 1, 0),
    ("up3_64b", 2, 4096, 640, 32, 1e-5, 1, 0),
    ("attn_64", 2, 4096, 320, 32, 1e-6, 0, 0),
    ("attn_32", 2, 1024, 640, 32, 1e-6, 0, 0),
    ("attn_16", 2, 256, 1280, 32, 1e-6, 0, 0),
    ("attn_8", 2, 64, 1280, 32, 1e-6, 0, 0),
    ("cg2", 1, 37, 64, 32, 1e-5, 1, 0),
    ("c12", 1, 50, 12, 4, 1e-5, 0, 0),
    ("one_group", 1, 1000, 8, 1, 1e-5, 1, 0),
    ("big_mean", 2, 1024, 640, 32, 1e-5, 0, 1),
    ("c96_g3", 3, 33, 96, 3, 1e-5, 1, 0),
]

# test_cuda_norm.c k_ln: what, m, c
LAYER_NORM = [("attn_64", 8192, 320), ("attn_32", 2048, 640), ("attn_16", 512, 1280),
              ("attn_8", 128, 1280), ("clip", 154, 768), ("odd_c59", 33, 59), ("c8", 1, 8)]

# test_cuda_eltwise.c main()
GEGLU = [(8192, 1280), (2048, 2560), (512, 5120), (128, 5120), (5, 37)]
UPSAMPLE = [(2, 8, 8, 1280), (2, 16, 16, 1280), (2, 32, 32, 640), (1, 5, 7, 12), (1, 3, 2, 8)]
TIMESTEP = [(2, 320, 1, 0.0), (16, 320, 1, 0.0), (3, 33, 0, 1.0)]
FLAT = ["add", "silu", "gelu", "quick_gelu", "relu"]
FLAT_COUNTS = [(2 * 4096 * 320, 0, 0), (1001, 1, 0), (4099, 0, 1)]


def main():
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--small", action="store_true", help="cases of < 2^16 outputs only")
    args = ap.parse_args()
    try:
        import torch
        import torch.nn.functional as F
    except Exception as e:  # noqa: BLE001
        print(f"torch_fp16_error: torch unavailable ({e}): no GPU: skipped")
        return 77
    if args.device == "cuda" and not torch.cuda.is_available():
        print("torch_fp16_error: no GPU: skipped")
        return 77
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = torch.device(args.device)
    out = open(args.out, "w")
    state = {"gen": torch.Generator(device=dev)}

    def uni(shape, lo, hi):
        """fp32 uniform in [lo, hi), rounded to fp16 (returned as fp16)."""
        x = torch.rand(shape, generator=state["gen"], device=dev, dtype=torch.float32)
        return (lo + (hi - lo) * x).half()

    def record(op, case, run, outputs):
        if args.small and outputs >= 1 << 16:
            return
        worst = [0.0, 0.0, 0.0]  # max over the seeds of max|err|, NMSE, max|ref|
        for seed in (1, 2):
            state["gen"].manual_seed(seed * 7919 + len(case))
            got, ref = run()
            got = got.double()
            ma = (got - ref).abs().max().item()
            nmse = ((got - ref) ** 2).sum().item() / max((ref ** 2).sum().item(), 1e-300)
            worst = [max(worst[0], ma), max(worst[1], nmse), max(worst[2], ref.abs().max().item())]
        rec = {"op": op, "case": case, "max_abs": worst[0], "nmse": worst[1],
               "max_ref": worst[2], "torch": torch.__version__}
        out.write(json.dumps(rec) + "\n")
        out.flush()
        print(f"{op:<11} {case:<40} torch fp16 max|err| {worst[0]:.3e} nmse {worst[1]:.2e} "
              f"max|ref| {worst[2]:.3g}")

    # ---- attention
    for kind, n, h, d, tq, tkv, extra in ATTENTION:
        case = f"{kind}_n{n}_h{h}_tq{tq}_tkv{tkv}_d{d}" + (f"_ld+{extra}" if extra else "")
        causal = kind == "causal"

        def run(n=n, h=h, d=d, tq=tq, tkv=tkv, causal=causal):
            q = uni((n, h, tq, d), -2, 2)
            k = uni((n, h, tkv, d), -2, 2)
            v = uni((n, h, tkv, d), -2, 2)
            s = 1.0 / math.sqrt(d)
            got = F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=s)
            qd, kd, vd = q.double(), k.double(), v.double()
            sc = (qd @ kd.transpose(-1, -2)) * s
            if causal:
                mask = torch.ones(tq, tkv, dtype=torch.bool, device=dev).triu(1)
                sc = sc.masked_fill(mask, float("-inf"))
            ref = torch.softmax(sc, dim=-1) @ vd
            return got, ref
        record("attention", case, run, n * h * tq * d)
        if dev.type == "cuda":
            torch.cuda.empty_cache()

    # ---- conv2d (NCHW tensors in channels_last memory: the NHWC layout)
    for what, n, hh, ww, ci, co, k, stride, pad, pad_br, bias, res in CONV:
        case = f"{what}_n{n}_{hh}x{ww}_{ci}-{co}_k{k}s{stride}"

        def run(n=n, hh=hh, ww=ww, ci=ci, co=co, k=k, stride=stride, pad=pad, pad_br=pad_br,
                bias=bias, res=res):
            ws = math.sqrt(3.0 / (k * k * ci))
            x = uni((n, ci, hh, ww), -1, 1).to(memory_format=torch.channels_last)
            w = uni((co, ci, k, k), -ws, ws).to(memory_format=torch.channels_last)
            b = uni((co,), -0.5, 0.5) if bias else None
            xin = F.pad(x, (0, pad_br, 0, pad_br)) if pad_br else x
            got = F.conv2d(xin, w, b, stride=stride, padding=pad)
            ref = F.conv2d(xin.double(), w.double(), b.double() if b is not None else None,
                           stride=stride, padding=pad)
            if res:
                r = uni(tuple(got.shape), -1, 1)
                got = got + r  # diffusers ResnetBlock2D: (input + hidden) in fp16
                ref = ref + r.double()
            return got, ref
        record("conv2d", case, run, n * hh * ww * co // (stride * stride))

    # ---- group norm (+ SiLU)
    for what, n, hw, c, groups, eps, silu, big in GROUP_NORM:
        case = f"{what}_n{n}_hw{hw}_c{c}_g{groups}" + ("_silu" if silu else "")

        def run(n=n, hw=hw, c=c, groups=groups, eps=eps, silu=silu, big=big):
            x = (uni((n, c, hw), 9.5, 10.5) if big else uni((n, c, hw), -1.5, 2.5))
            g = uni((c,), 0.5, 1.5)
            b = uni((c,), -0.5, 0.5)
            got = F.group_norm(x, groups, g, b, eps)
            ref = F.group_norm(x.double(), groups, g.double(), b.double(), eps)
            if silu:
                got, ref = F.silu(got), F.silu(ref)
            return got, ref
        record("group_norm", case, run, n * hw * c)

    for what, m, c in LAYER_NORM:
        def run(m=m, c=c):
            x = uni((m, c), -1.5, 2.5)
            g = uni((c,), 0.5, 1.5)
            b = uni((c,), -0.5, 0.5)
            return (F.layer_norm(x, (c,), g, b, 1e-5),
                    F.layer_norm(x.double(), (c,), g.double(), b.double(), 1e-5))
        record("layer_norm", f"{what}_m{m}_c{c}", run, m * c)

    # ---- memory-bound ops
    for m, f in GEGLU:
        def run(m=m, f=f):
            x = uni((m, 2 * f), -4, 4)
            hid, gate = x.chunk(2, dim=-1)
            return hid * F.gelu(gate), hid.double() * F.gelu(gate.double())
        record("geglu", f"m{m}_f{f}", run, m * f)
    for n, hh, ww, c in UPSAMPLE:
        def run(n=n, hh=hh, ww=ww, c=c):
            x = uni((n, c, hh, ww), -4, 4)
            return (F.interpolate(x, scale_factor=2.0, mode="nearest"),
                    F.interpolate(x.double(), scale_factor=2.0, mode="nearest"))
        record("upsample", f"n{n}_{hh}x{ww}_c{c}", run, 4 * n * hh * ww * c)
    for n, dim, flip, shift in TIMESTEP:
        def run(n=n, dim=dim, flip=flip, shift=shift):
            t = uni((n,), 0, 1000).float()

            def emb(t, dtype):  # diffusers get_timestep_embedding
                half = dim // 2
                e = -math.log(10000) * torch.arange(half, dtype=dtype, device=dev) / (half - shift)
                e = t[:, None].to(dtype) * torch.exp(e)[None, :]
                e = torch.cat([torch.sin(e), torch.cos(e)], dim=-1)
                if flip:
                    e = torch.cat([e[:, half:], e[:, :half]], dim=-1)
                if dim % 2:
                    e = F.pad(e, (0, 1))
                return e
            return emb(t, torch.float32).half(), emb(t, torch.float64)
        record("timestep", f"n{n}_dim{dim}_flip{flip}_shift{shift:g}", run, n * dim)
    for op in FLAT:
        for count, unaligned, inplace in FLAT_COUNTS:
            case = f"count{count}" + ("_unaligned" if unaligned else "") + ("_inplace" if inplace else "")

            def run(op=op, count=count):
                a = uni((count,), -4, 4)
                b = uni((count,), -4, 4)
                fns = {
                    "add": (lambda a: a + b, lambda a: a + b.double()),
                    "silu": (F.silu, F.silu),
                    "gelu": (F.gelu, F.gelu),
                    "quick_gelu": (lambda x: x * torch.sigmoid(1.702 * x),
                                   lambda x: x * torch.sigmoid(1.702 * x)),
                    "relu": (torch.relu, torch.relu),
                }
                f16, f64 = fns[op]
                return f16(a), f64(a.double())
            record(op, case, run, count)
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
