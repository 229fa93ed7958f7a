#!/usr/bin/env python3
"""diffusers' CPU text-to-image, timed the way `hsd generate -v` reports it.

  python bench/diffusers_cpu_pipeline.py --model DIR [--unet DIR] [--vae full|tiny]
      [--steps 4] [--size 512] [--threads T] [--bf16]

DIR is a pipeline folder as tests/oracle/make_full_pipeline.py writes it
(tokenizer/, text_encoder/, unet/, vae/, vae_tiny/, scheduler/); --unet
replaces its U-Net (the BK-SDM-Tiny edge), --vae tiny decodes with
vae_tiny/ (AutoencoderTiny). The parts are read as fp32 from their fp16
files, like hsd's CPU backend computes; --bf16 runs the denoising and the
decode under torch.autocast("cpu", bfloat16) (only meaningful where the
CPU has avx512_bf16 or AMX). Euler, CFG 7.5, one prompt, seed 1.

Prints one JSON line: load_ms (every part from disk), denoise_ms (text
encoder + the U-Net calls), decode_ms, wall_ms (load + denoise + decode) and
peak_rss_mb (this process's ru_maxrss). Run one configuration per process,
so the peak belongs to it alone.
"""

import argparse
import contextlib
import json
import os
import resource
import time

import torch

import diffusers
from diffusers import (AutoencoderKL, AutoencoderTiny, EulerDiscreteScheduler,
                       StableDiffusionPipeline, UNet2DConditionModel)
from transformers import CLIPTextModel, CLIPTokenizer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--unet")
    ap.add_argument("--vae", choices=["full", "tiny"], default="full")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--bf16", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    diffusers.utils.logging.set_verbosity_error()
    f32 = torch.float32

    t0 = time.perf_counter()
    tok = CLIPTokenizer.from_pretrained(os.path.join(a.model, "tokenizer"))
    text = CLIPTextModel.from_pretrained(os.path.join(a.model, "text_encoder"), dtype=f32)
    unet = UNet2DConditionModel.from_pretrained(a.unet or os.path.join(a.model, "unet"),
                                                torch_dtype=f32)
    if a.vae == "tiny":
        vae = AutoencoderTiny.from_pretrained(os.path.join(a.model, "vae_tiny"), torch_dtype=f32)
    else:
        vae = AutoencoderKL.from_pretrained(os.path.join(a.model, "vae"), torch_dtype=f32)
    sched = EulerDiscreteScheduler.from_pretrained(os.path.join(a.model, "scheduler"))
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet,
                                   scheduler=sched, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    t1 = time.perf_counter()

    amp = (torch.autocast("cpu", dtype=torch.bfloat16) if a.bf16
           else contextlib.nullcontext())
    with torch.inference_mode(), amp:
        latents = pipe("a photo of a cat", num_inference_steps=a.steps, guidance_scale=7.5,
                       height=a.size, width=a.size, output_type="latent",
                       generator=torch.Generator().manual_seed(1)).images
        t2 = time.perf_counter()
        scale = getattr(vae.config, "scaling_factor", 1.0)
        vae.decode(latents / scale).sample
        t3 = time.perf_counter()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"impl": "diffusers" + ("-bf16" if a.bf16 else ""),
                      "unet": a.unet or "unet", "vae": a.vae, "steps": a.steps,
                      "threads": a.threads, "load_ms": round((t1 - t0) * 1e3, 1),
                      "denoise_ms": round((t2 - t1) * 1e3, 1),
                      "decode_ms": round((t3 - t2) * 1e3, 1),
                      "wall_ms": round((t3 - t0) * 1e3, 1), "peak_rss_mb": round(rss_mb, 1)}))


if __name__ == "__main__":
    main()
