#!/usr/bin/env python3
"""Time diffusers' CPU fp32 U-Net forward: the baseline for `hsd bench unet`.

  python bench/diffusers_unet_cpu.py --model DIR --batch N --height H --width W \
      --threads T --repeats R [--in IO.safetensors]
  python bench/diffusers_unet_cpu.py --preset sdxl-base|koala-1b|koala-700m ...

DIR is a diffusers folder holding unet/ (or the unet/ folder itself). Weights
are loaded as fp32 whatever their stored dtype. H and W are latent sizes.
Inputs come from --in (sample, timestep, encoder_hidden_states, as the
oracle's io.safetensors files hold them; they then fix batch/height/width)
or are random with a fixed seed. One warm-up pass, then the median of R
timed passes; prints one JSON line:
  {"impl":"diffusers","model":...,"batch":N,"h":H,"w":W,"threads":T,"ms":...}

--preset builds the SDXL-family config of `hsd bench unet --preset NAME`
(tests/data/presets/unet_params.json) with random weights, no folder
needed. SDXL-family U-Nets get added_cond_kwargs: a random pooled embedding
and the time ids of an uncropped 8H x 8W image, as `hsd bench unet` passes.

Structurally pruned folders (tests/data/unet/pruned) cannot be loaded here:
their config.json is the unpruned one and from_pretrained rejects the shapes.
"""

import argparse
import json
import os
import statistics
import time

import torch
from safetensors.torch import load_file

import diffusers
from diffusers import UNet2DConditionModel


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model")
    ap.add_argument("--preset", help="an SDXL-family preset of tests/data/presets/unet_params.json")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--height", type=int, default=64)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--in", dest="io", help="io.safetensors with sample/timestep/encoder_hidden_states")
    args = ap.parse_args()
    if bool(args.model) == bool(args.preset):
        ap.error("give exactly one of --model and --preset")

    torch.set_num_threads(args.threads)
    diffusers.utils.logging.set_verbosity_error()
    if args.preset:
        here = os.path.dirname(os.path.abspath(__file__))
        with open(os.path.join(here, "..", "tests", "data", "presets", "unet_params.json")) as f:
            model = UNet2DConditionModel(**json.load(f)[args.preset]["config"]).eval()
        args.model = args.preset
    else:
        unet_dir = os.path.join(args.model, "unet")
        if not os.path.isdir(unet_dir):
            unet_dir = args.model
        model = UNet2DConditionModel.from_pretrained(unet_dir, torch_dtype=torch.float32).eval()

    if args.io:
        io = load_file(args.io)
        sample, timestep, ehs = io["sample"], io["timestep"], io["encoder_hidden_states"]
    else:
        g = torch.Generator().manual_seed(0)
        n = args.batch
        sample = torch.randn(n, model.config.in_channels, args.height, args.width, generator=g)
        # Different timesteps per sample, as the service batches them.
        timestep = torch.linspace(999, 1, n).round().to(torch.int64)
        ehs = torch.randn(n, 77, model.config.cross_attention_dim, generator=g)
    n, _, h, w = sample.shape
    added = None
    if model.config.addition_embed_type == "text_time":
        pooled = (model.config.projection_class_embeddings_input_dim
                  - 6 * model.config.addition_time_embed_dim)
        g2 = torch.Generator().manual_seed(1)
        added = {"text_embeds": torch.randn(n, pooled, generator=g2),
                 "time_ids": torch.tensor([[8.0 * h, 8.0 * w, 0, 0, 8.0 * h, 8.0 * w]] * n)}

    times = []
    with torch.inference_mode():
        for i in range(args.repeats + 1):
            t0 = time.perf_counter()
            model(sample, timestep, encoder_hidden_states=ehs, added_cond_kwargs=added)
            if i > 0:  # the first pass is the warm-up
                times.append((time.perf_counter() - t0) * 1e3)

    print(json.dumps({
        "impl": "diffusers",
        "model": os.path.basename(os.path.normpath(args.model)),
        "batch": n, "h": h, "w": w,
        "threads": args.threads,
        "ms": round(statistics.median(times), 3),
    }))


if __name__ == "__main__":
    main()
