#!/usr/bin/env python3
"""Make tests/data/unet_bf16/io.safetensors: the golden of hsd's bf16 CPU mode.

The model is the tiny pipeline's large U-Net (tests/data/pipeline/large/unet,
made by make_pipeline_cases.py), so no weights are added here. One random
input (batch 2, 16x16 latent, per-sample timesteps, 77-token context) and two
diffusers outputs of it on the CPU:

  out_fp32  the model in fp32 (the reference of the default mode)
  out_bf16  the same fp32 model under torch.autocast("cpu", dtype=torch.bfloat16):
            nn.Linear and nn.Conv2d take bf16-rounded inputs and weights with
            fp32 accumulation, norms and softmax stay fp32 -- what hsd's
            --cpu-precision bf16 does (docs/cpu-precision.md).

Usage:  python make_unet_bf16_case.py [--out tests/data/unet_bf16]
Deterministic (fixed seed, one torch thread); see regen.sh.
"""

import argparse
import os

import torch
from safetensors.torch import save_file

from diffusers import UNet2DConditionModel

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(REPO, "tests/data/unet_bf16"))
    ap.add_argument("--model", default=os.path.join(REPO, "tests/data/pipeline/large/unet"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(1405)
    unet = UNet2DConditionModel.from_pretrained(args.model, torch_dtype=torch.float32).eval()
    cfg = unet.config
    n, h, w = 2, 16, 16
    sample = torch.randn(n, cfg.in_channels, h, w)
    timestep = torch.tensor([999.0, 261.0])
    ctx = torch.randn(n, 77, cfg.cross_attention_dim)
    with torch.no_grad():
        out32 = unet(sample, timestep, ctx).sample.float()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out16 = unet(sample, timestep, ctx).sample.float()
    os.makedirs(args.out, exist_ok=True)
    save_file({"sample": sample.contiguous(), "timestep": timestep.contiguous(),
               "encoder_hidden_states": ctx.contiguous(), "out_fp32": out32.contiguous(),
               "out_bf16": out16.contiguous()},
              os.path.join(args.out, "io.safetensors"))
    scale = out32.abs().max().item()
    err = (out16 - out32).abs().max().item()
    print(f"unet_bf16: max|out_fp32| {scale:.4g}, diffusers bf16 autocast vs fp32: "
          f"max abs err {err:.4g} ({err / scale:.3g} of the output scale)")


if __name__ == "__main__":
    main()
