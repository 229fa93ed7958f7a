#!/usr/bin/env python3
"""diffusers' parameter counts of hsd's SDXL-family U-Net presets.

`hsd bench unet --preset NAME` builds host/models/unet_presets.c's configs
with random weights; these are the same configs (SDXL-base 1.0, KOALA-1B,
KOALA-700M) as diffusers UNet2DConditionModel builds them on the meta device
(no memory), and the number of parameters it counts. test_unet_load parses
each config here with hsd's parser, requires it to equal the preset's, and
requires hsd's count to equal diffusers'.

Usage:  python make_unet_preset_params.py [--out tests/data/presets/unet_params.json]
"""

import argparse
import json
import os

import torch
from diffusers import UNet2DConditionModel

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# stabilityai/stable-diffusion-xl-base-1.0 unet/config.json (keys that
# differ from UNet2DConditionModel's defaults).
SDXL = dict(sample_size=128, down_block_types=["DownBlock2D", "CrossAttnDownBlock2D",
                                               "CrossAttnDownBlock2D"],
            up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
            block_out_channels=[320, 640, 1280], attention_head_dim=[5, 10, 20],
            cross_attention_dim=2048, use_linear_projection=True,
            addition_embed_type="text_time", addition_time_embed_dim=256,
            projection_class_embeddings_input_dim=2816)
PRESETS = {
    "sdxl-base": dict(SDXL, layers_per_block=2, transformer_layers_per_block=[1, 2, 10]),
    # KOALA (arXiv 2312.04005): one layer per block, depth 6 / 5 at the
    # deepest level, KOALA-700M also without mid block.
    "koala-1b": dict(SDXL, layers_per_block=1, transformer_layers_per_block=[1, 2, 6]),
    "koala-700m": dict(SDXL, layers_per_block=1, transformer_layers_per_block=[1, 2, 5],
                       mid_block_type=None),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "data", "presets",
                                                  "unet_params.json"))
    args = ap.parse_args()
    out = {}
    for name, cfg in PRESETS.items():
        with torch.device("meta"):
            model = UNet2DConditionModel(**cfg)
        n = sum(p.numel() for p in model.parameters())
        print(f"{name:12s} {n:,} parameters")
        out[name] = {"config": cfg, "params": n}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
