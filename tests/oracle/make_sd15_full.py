#!/usr/bin/env python3
"""Make the full-size "slow" U-Net golden (not committed: ~1.7 GB of fp16).

  python make_sd15_full.py OUTDIR [--config sd15|bksdm_tiny] [--repeats 3]

Writes
  OUTDIR/unet/config.json + diffusion_pytorch_model.safetensors  (fp16)
  OUTDIR/io.safetensors   sample [2,4,64,64], timestep [2] (int64),
                          encoder_hidden_states [2,77,768], out [2,4,64,64]
The weights are random (diffusers' default init, seeded), rounded to fp16
and saved; `out` is diffusers' CPU fp32 forward from those fp16-rounded
weights, so a C run on the saved folder must match it. The same forward is
then timed (all cores, one warm-up, median of --repeats) and printed as one
JSON line, the same shape bench/diffusers_unet_cpu.py prints.
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch
from safetensors.torch import save_file

import diffusers
from diffusers import UNet2DConditionModel

# The runwayml/stable-diffusion-v1-5 unet/config.json, written out so that
# nothing is downloaded (keys diffusers fills with defaults are left out).
SD15_UNET_CONFIG = {
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 768,
    "down_block_types": [
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": [
        "UpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
    ],
}

# BK-SDM-Tiny (nota-ai/bk-sdm-tiny): SD 1.5 with the mid block and the
# innermost, attention-free level removed and one ResNet(+attention) per
# block; 323,384,964 parameters, the published count.
BKSDM_TINY_UNET_CONFIG = dict(
    SD15_UNET_CONFIG,
    block_out_channels=[320, 640, 1280],
    down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    mid_block_type=None,
    layers_per_block=1,
)

CONFIGS = {"sd15": SD15_UNET_CONFIG, "bksdm_tiny": BKSDM_TINY_UNET_CONFIG}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir")
    ap.add_argument("--config", choices=sorted(CONFIGS), default="sd15")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()

    # Default init (kaiming-uniform convs/linears, unit norms) keeps
    # activations O(1) through the full-size net, so no rescaling is needed.
    torch.manual_seed(args.seed)
    diffusers.utils.logging.set_verbosity_error()
    model = UNet2DConditionModel(**CONFIGS[args.config]).eval()
    model = model.half()
    model.save_pretrained(os.path.join(args.outdir, "unet"))
    model = model.float()  # fp16-rounded weights, computed in fp32

    n, h, w = 2, 64, 64
    g = torch.Generator().manual_seed(args.seed + 1)
    sample = torch.randn(n, 4, h, w, generator=g)
    timestep = torch.tensor([999, 501], dtype=torch.int64)
    ehs = torch.randn(n, 77, model.config.cross_attention_dim, generator=g)

    # The golden is made with one thread so it is reproducible; timing then
    # uses every core, as a user of diffusers would.
    torch.set_num_threads(1)
    with torch.no_grad():
        out = model(sample, timestep, encoder_hidden_states=ehs).sample
    params = sum(p.numel() for p in model.parameters())
    print(f"{args.config}: {params} params, out max|abs| {out.abs().max().item():.4f}", file=sys.stderr)
    save_file(
        {"sample": sample, "timestep": timestep, "encoder_hidden_states": ehs, "out": out.contiguous()},
        os.path.join(args.outdir, "io.safetensors"),
        metadata={"hsd_oracle": json.dumps({"case": args.config + "_full", "weights_dtype": "float16"})},
    )

    threads = os.cpu_count()
    torch.set_num_threads(threads)
    times = []
    with torch.no_grad():
        for i in range(args.repeats + 1):
            t0 = time.perf_counter()
            model(sample, timestep, encoder_hidden_states=ehs)
            if i > 0:  # the first pass is the warm-up
                times.append((time.perf_counter() - t0) * 1e3)
    print(json.dumps({
        "impl": "diffusers", "model": args.config, "batch": n, "h": h, "w": w,
        "threads": threads, "ms": round(statistics.median(times), 3),
    }))


if __name__ == "__main__":
    main()
