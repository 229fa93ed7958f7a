#!/usr/bin/env python3
"""Make the committed VAE goldens in tests/data/vae/ from diffusers.

Each case is a small random-weight diffusers VAE with the structure of a real
one: AutoencoderKL (SD's VAE: 4 levels, so 8 pixels per latent pixel, mid
block attention) and AutoencoderTiny (TAESD). For each case we write

  <case>/vae/config.json, <case>/vae/diffusion_pytorch_model.safetensors
      exactly what save_pretrained writes (weights in the case's dtype),
  <case>/io.safetensors
      inputs, outputs and a few small intermediates, computed by diffusers
      in fp32 on CPU from the weights as stored (fp16/bf16-rounded).

io.safetensors tensors (NCHW):
  latent [n,4,8,8] F32        -> image [n,3,64,64] F32 = vae.decode(latent).sample
  latent_ns [1,4,4,12] F32    -> image_ns [1,3,32,96] F32 (non-square)
  enc_image [n,3,64,64] F16   -> enc_latent [n,4,8,8] F32 = encode(...).latent_dist.mode()
                                 (KL) or encode(...).latents (Tiny)
  enc_image_ns [1,3,32,96] F16 -> enc_latent_ns [1,4,4,12] F32
  intermediates (KL): dec.conv_in (decoder.conv_in output), dec.mid
  (decoder.mid_block output), enc.mid (encoder.mid_block output),
  enc.moments (encoder + quant_conv: [mean | logvar]);
  (Tiny): dec.clamp (tanh(latent / 3) * 3).
The encoder inputs are stored as F16 to keep the folder small (torch reads
them exactly as the C side does: F16 -> F32 is exact); they lie in [-1, 1]
like real images.

Model builders for other scripts (the tiny pipelines):
  build_tiny_vae_kl(out_dir) and build_tiny_vae_tiny(out_dir) write
  out_dir/config.json + diffusion_pytorch_model.safetensors and return the
  module in fp32 (from the stored weights).

Usage:  python make_vae_cases.py [--out tests/data/vae] [--only CASE ...]
Regeneration is deterministic (fixed seeds, one torch thread); see regen.sh.
"""

import argparse
import json
import os
import shutil

import torch
from safetensors.torch import save_file

import diffusers
from diffusers import AutoencoderKL, AutoencoderTiny

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# AutoencoderKL configs. Widths are tiny so the weights stay a few hundred KB;
# 4 levels as in SD (scale 8). norm_num_groups 4 or 8 (SD: 32) keeps several
# channels per group, so the group reduction over channels is tested.
KL_BASE = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=["DownEncoderBlock2D"] * 4,
    up_block_types=["UpDecoderBlock2D"] * 4,
    latent_channels=4,
    sample_size=64,
)

CASES = [
    dict(
        # SD's VAE structure and defaults (quant convs, mid attention,
        # scaling_factor 0.18215), width changes 8 -> 16 (conv_shortcut in
        # both directions). fp32.
        name="kl",
        kind="kl",
        seed=801,
        config=dict(KL_BASE, block_out_channels=[8, 16, 16, 16], layers_per_block=1,
                    norm_num_groups=4, scaling_factor=0.18215),
        weights_dtype=torch.float32,
        batch=2,
    ),
    dict(
        # SD3-style knobs: no quant_conv (the posterior comes straight from
        # the encoder), a post_quant_conv, shift_factor and another scaling
        # factor, 8 groups, one layer per level. fp16 weights.
        name="kl_fp16",
        kind="kl",
        seed=1602,
        config=dict(KL_BASE, block_out_channels=[16, 16, 16, 16], layers_per_block=1,
                    norm_num_groups=8, scaling_factor=1.5305, shift_factor=0.0609,
                    use_quant_conv=False, use_post_quant_conv=True),
        weights_dtype=torch.float16,
        batch=1,
    ),
    dict(
        # Mid blocks without attention, quant_conv but no post_quant_conv,
        # 2 layers per level (3 in the decoder), bf16 weights, batch 1.
        name="kl_noattn_bf16",
        kind="kl",
        seed=1603,
        config=dict(KL_BASE, block_out_channels=[8, 8, 8, 8], layers_per_block=2,
                    norm_num_groups=4, mid_block_add_attention=False,
                    use_quant_conv=True, use_post_quant_conv=False),
        weights_dtype=torch.bfloat16,
        batch=1,
    ),
    dict(
        # TAESD structure (AutoencoderTiny) at width 8, with more than one
        # AutoencoderTinyBlock in some stages so the layer indices of the
        # nn.Sequential are exercised. Latents scaled up so the decoder's
        # tanh clamp saturates. fp32.
        name="tiny",
        kind="tiny",
        seed=2701,
        config=dict(in_channels=3, out_channels=3,
                    encoder_block_out_channels=[8, 8, 8, 8],
                    decoder_block_out_channels=[8, 8, 8, 8],
                    num_encoder_blocks=[1, 2, 1, 1], num_decoder_blocks=[2, 1, 1, 1],
                    latent_channels=4),
        weights_dtype=torch.float32,
        batch=2,
        latent_scale=3.0,
    ),
]

CASE_BY_NAME = {c["name"]: c for c in CASES}


def perturb_norms(model: torch.nn.Module, gen: torch.Generator) -> None:
    """Give every GroupNorm a non-trivial affine transform.

    Default init is weight=1, bias=0; a C implementation that ignored gamma
    and beta, or swapped them, would then still match the golden.
    """
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.GroupNorm) and mod.weight is not None:
                mod.weight.copy_(1.0 + 0.1 * torch.randn(mod.weight.shape, generator=gen))
                mod.bias.copy_(0.1 * torch.randn(mod.bias.shape, generator=gen))


def boost_tiny(model: torch.nn.Module, gen: torch.Generator) -> None:
    """Keep TAESD's signal alive through the random ReLU stack.

    With PyTorch's default init every conv shrinks its input by ~sqrt(3)
    (U(-1/sqrt(fan_in), ..) has variance 1/(3 fan_in)), and half of it is
    cut by each ReLU, so after ~20 convs the random decoder outputs a near
    constant and any error would hide below the tolerance. Rescaling each
    conv to He gain (variance 2/fan_in) keeps activations O(1); biases get a
    little spread.
    """
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.Conv2d):
                fan_in = mod.weight[0].numel()
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
                if mod.bias is not None:
                    mod.bias.copy_(0.1 * torch.randn(mod.bias.shape, generator=gen))


def _build(cls, config: dict, seed: int, weights_dtype, out_dir: str, tiny: bool):
    torch.manual_seed(seed)
    model = cls(**config).eval()
    gen = torch.Generator().manual_seed(seed + 1)
    if tiny:
        boost_tiny(model, gen)
    perturb_norms(model, gen)
    # Round the weights to the storage dtype first, so the reference is
    # computed from exactly the weights in the file.
    model = model.to(weights_dtype)
    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir)
    return model.float()


def build_tiny_vae_kl(out_dir: str, case: str = "kl"):
    """Writes a small random AutoencoderKL (case `case`) to out_dir; returns it in fp32."""
    c = CASE_BY_NAME[case]
    assert c["kind"] == "kl"
    return _build(AutoencoderKL, c["config"], c["seed"], c["weights_dtype"], out_dir, False)


def build_tiny_vae_tiny(out_dir: str, case: str = "tiny"):
    """Writes a small random AutoencoderTiny (TAESD) to out_dir; returns it in fp32."""
    c = CASE_BY_NAME[case]
    assert c["kind"] == "tiny"
    return _build(AutoencoderTiny, c["config"], c["seed"], c["weights_dtype"], out_dir, True)


def capture(model, kind: str, fn):
    """Runs fn() with forward hooks; returns the small intermediates."""
    cap = {}

    def keep(name):
        def hook(_mod, _inp, out):
            cap[name] = out.detach().float().contiguous().clone()
        return hook

    hooks = []
    if kind == "kl":
        hooks.append(model.decoder.conv_in.register_forward_hook(keep("dec.conv_in")))
        hooks.append(model.decoder.mid_block.register_forward_hook(keep("dec.mid")))
        hooks.append(model.encoder.mid_block.register_forward_hook(keep("enc.mid")))
    with torch.no_grad():
        out = fn()
    for h in hooks:
        h.remove()
    return out, cap


def make_case(case: dict, out_root: str) -> dict:
    name, kind = case["name"], case["kind"]
    case_dir = os.path.join(out_root, name)
    # Start the case from an empty folder so no stale file survives.
    shutil.rmtree(case_dir, ignore_errors=True)
    vae_dir = os.path.join(case_dir, "vae")
    if kind == "kl":
        model = build_tiny_vae_kl(vae_dir, name)
    else:
        model = build_tiny_vae_tiny(vae_dir, name)

    # Inputs come from their own generator so they do not depend on the
    # number of parameters drawn before.
    g = torch.Generator().manual_seed(case["seed"] + 2)
    n = case["batch"]
    ls = case.get("latent_scale", 1.0)
    latent = torch.randn(n, 4, 8, 8, generator=g) * ls
    latent_ns = torch.randn(1, 4, 4, 12, generator=g) * ls
    # Images in [-1, 1], rounded to fp16 (stored that way).
    enc_image = (torch.rand(n, 3, 64, 64, generator=g) * 2 - 1).half()
    enc_image_ns = (torch.rand(1, 3, 32, 96, generator=g) * 2 - 1).half()

    io = {"latent": latent, "latent_ns": latent_ns, "enc_image": enc_image,
          "enc_image_ns": enc_image_ns}
    image, cap = capture(model, kind, lambda: model.decode(latent).sample)
    io["image"] = image.contiguous()
    io.update({k: v for k, v in cap.items() if k.startswith("dec.")})
    with torch.no_grad():
        io["image_ns"] = model.decode(latent_ns).sample.contiguous()
    if kind == "kl":
        post, cap = capture(model, kind, lambda: model.encode(enc_image.float()).latent_dist)
        io["enc_latent"] = post.mode().contiguous()
        io["enc.moments"] = post.parameters.contiguous().clone()
        io.update({k: v for k, v in cap.items() if k.startswith("enc.")})
        with torch.no_grad():
            io["enc_latent_ns"] = model.encode(enc_image_ns.float()).latent_dist.mode().contiguous()
    else:
        with torch.no_grad():
            io["enc_latent"] = model.encode(enc_image.float()).latents.contiguous()
            io["enc_latent_ns"] = model.encode(enc_image_ns.float()).latents.contiguous()
            io["dec.clamp"] = (torch.tanh(latent / 3) * 3).contiguous()
    for k, v in io.items():
        assert torch.isfinite(v.float()).all(), k
    assert io["image"].shape == (n, 3, 64, 64)
    assert io["image_ns"].shape == (1, 3, 32, 96)
    assert io["enc_latent"].shape == (n, 4, 8, 8)
    assert io["enc_latent_ns"].shape == (1, 4, 4, 12)

    meta = {
        "case": name,
        "weights_dtype": str(case["weights_dtype"]).replace("torch.", ""),
        "reference": f"diffusers {diffusers.__version__} torch {torch.__version__} fp32 cpu",
    }
    # One metadata key only: several keys come out in a different order on
    # every run (a Rust HashMap), and the file would not be byte-identical.
    save_file(io, os.path.join(case_dir, "io.safetensors"),
              metadata={"hsd_oracle": json.dumps(meta, sort_keys=True)})

    files = {}
    for root, _, names in os.walk(case_dir):
        for fn in names:
            p = os.path.join(root, fn)
            files[os.path.relpath(p, out_root)] = os.path.getsize(p)
    stats = {k: (v.float().abs().max().item(), v.float().std().item()) for k, v in io.items()}
    return {"case": name, "params": sum(p.numel() for p in model.parameters()),
            "weights_dtype": meta["weights_dtype"], "files": files, "stats": stats}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "data", "vae"))
    ap.add_argument("--only", nargs="*", help="case names (default: all)")
    args, _ = ap.parse_known_args()

    # One thread and deterministic kernels: goldens must be byte-identical
    # when regenerated on the same machine.
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    diffusers.utils.logging.set_verbosity_error()

    total = 0
    for case in CASES:
        if args.only and case["name"] not in args.only:
            continue
        s = make_case(case, args.out)
        size = sum(s["files"].values())
        total += size
        print(f"{s['case']:16s} params={s['params']:7d} weights={s['weights_dtype']:8s} "
              f"bytes={size}")
        for k, (mx, sd) in sorted(s["stats"].items()):
            print(f"    {k:16s} max|x|={mx:9.4f} std={sd:8.4f}")
        for p, b in sorted(s["files"].items()):
            print(f"    {p:60s} {b:9d}")
    print(f"total bytes {total}")


if __name__ == "__main__":
    main()
