"""LCM: LCM-shaped random U-Nets, diffusers' LCMScheduler and its images.

    python tests/oracle/make_lcm_cases.py [--out tests/data/lcm]

Writes, next to the tiny pipeline of make_pipeline_cases.py (whose
tokenizer, text encoder and VAE it reuses):

  <out>/large/      a pipeline folder whose U-Net has the large test U-Net's
                    shape plus time_cond_proj_dim (the guidance-scale
                    embedding of latent consistency models) and whose
                    scheduler/ is LCMScheduler's published config
                    (LCM_Dreamshaper_v7: original_inference_steps 50,
                    timestep_scaling 10, set_alpha_to_one, steps_offset 1)
  <out>/edge/unet/  an LCM-shaped edge U-Net (the BK-SDM-Tiny-shaped test
                    edge U-Net plus time_cond_proj_dim)

and runs LatentConsistencyModelPipeline (no CFG; w = guidance_scale - 1
embedded) for 4 and 8 steps, the Hybrid SD LCM split 4 + 4 (the edge U-Net
takes over after step 4, one scheduler object), and LCM-LoRA
(StableDiffusionPipeline on the tiny SD pipeline + the kohya test LoRA +
LCMScheduler, CFG 1.5), writing <out>/cases.json and
<out>/goldens.safetensors (`<case>.latent`: the last `denoised`, which the
pipeline decodes; `<case>.image`, `<case>.rgb`). Deterministic.
"""

import argparse
import json
import os
import shutil

os.environ["ATEN_CPU_CAPABILITY"] = "avx2"
os.environ["MKL_ENABLE_INSTRUCTIONS"] = "AVX2"

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

import diffusers  # noqa: E402
from diffusers import (LatentConsistencyModelPipeline, LCMScheduler,  # noqa: E402
                       StableDiffusionPipeline, UNet2DConditionModel)

from make_pipeline_cases import fp16_rounded, perturb_norms  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data")

# SimianLuo/LCM_Dreamshaper_v7 scheduler/scheduler_config.json.
LCM_SCHEDULER = {
    "_class_name": "LCMScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "beta_start": 0.00085, "clip_sample": False, "clip_sample_range": 1.0,
    "dynamic_thresholding_ratio": 0.995, "num_train_timesteps": 1000,
    "original_inference_steps": 50, "prediction_type": "epsilon",
    "rescale_betas_zero_snr": False, "sample_max_value": 1.0, "set_alpha_to_one": True,
    "steps_offset": 1, "thresholding": False, "timestep_scaling": 10.0,
    "timestep_spacing": "leading", "trained_betas": None,
}
TCOND = 32  # time_cond_proj_dim (LCM_Dreamshaper_v7: 256)

CASES = [
    dict(name="lcm4", steps=4, cfg=8.0, seed=3, prompt="a photo of an astronaut riding a horse"),
    dict(name="lcm8", steps=8, cfg=1.5, seed=17, prompt="a watercolor painting of a lighthouse"),
    dict(name="lcm_hybrid_4_4", steps=8, cfg=8.0, seed=5, prompt="a cat wearing sunglasses",
         split=4),
    dict(name="lcm_lora", steps=4, cfg=1.5, seed=9, prompt="an old tree", lora=0.8),
]


def with_tcond(config):
    c = dict(config)
    for k in [k for k in c if k.startswith("_")]:
        del c[k]
    c["time_cond_proj_dim"] = TCOND
    return c


def build(out):
    gen = torch.Generator().manual_seed(2024)
    torch.manual_seed(2024)
    src = os.path.join(DATA, "pipeline")

    def sd():
        return StableDiffusionPipeline.from_pretrained(os.path.join(src, "large"),
                                                       dtype=torch.float32, safety_checker=None,
                                                       requires_safety_checker=False)

    # Two copies: the LCM-LoRA case loads a LoRA into `base`'s text encoder
    # and U-Net, which the LCM pipeline must not share.
    base, parts = sd(), sd()
    large = UNet2DConditionModel(**with_tcond(base.unet.config))
    edge_cfg = UNet2DConditionModel.load_config(os.path.join(src, "edge", "unet"))
    edge = UNet2DConditionModel(**with_tcond(edge_cfg))
    for m in (large, edge):
        perturb_norms(m, gen)
    large, edge = fp16_rounded(large), fp16_rounded(edge)
    sched = LCMScheduler.from_config(LCM_SCHEDULER)
    pipe = LatentConsistencyModelPipeline(
        vae=parts.vae, text_encoder=parts.text_encoder, tokenizer=parts.tokenizer, unet=large,
        scheduler=sched, safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    large_dir, edge_dir = os.path.join(out, "large"), os.path.join(out, "edge")
    for d in (large_dir, edge_dir):
        shutil.rmtree(d, ignore_errors=True)
    os.makedirs(edge_dir)
    for part in ("tokenizer", "text_encoder", "vae"):
        shutil.copytree(os.path.join(src, "large", part), os.path.join(large_dir, part))
    large.half().save_pretrained(os.path.join(large_dir, "unet"), safe_serialization=True)
    edge.half().save_pretrained(os.path.join(edge_dir, "unet"), safe_serialization=True)
    os.makedirs(os.path.join(large_dir, "scheduler"))
    with open(os.path.join(large_dir, "scheduler", "scheduler_config.json"), "w") as f:
        json.dump(dict(LCM_SCHEDULER, _diffusers_version="0.22.0.dev0"), f, indent=2)
    large.float()
    edge.float()
    base.set_progress_bar_config(disable=True)
    return pipe, edge, base


def decode(pipe, latents):
    with torch.no_grad():
        image = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample
    npimg = pipe.image_processor.postprocess(image, output_type="np")
    return image, torch.from_numpy((npimg * 255).round().astype("uint8"))


def run_case(pipe, edge, base, c):
    gens = [torch.Generator().manual_seed(c["seed"])]
    if "lora" in c:
        # LCM-LoRA: an ordinary SD U-Net with a LoRA, the LCM scheduler, CFG.
        base.scheduler = LCMScheduler.from_config(LCM_SCHEDULER)
        base.set_adapters(["kohya"], adapter_weights=[c["lora"]])
        with torch.no_grad():
            latents = base(prompt=c["prompt"], num_inference_steps=c["steps"],
                           guidance_scale=c["cfg"], height=64, width=64, generator=gens,
                           output_type="latent").images
        return (latents,) + decode(base, latents)
    k, large = c.get("split"), pipe.unet

    def swap(p, i, t, kw):
        if k is not None and i == k - 1:
            p.unet = edge
        return kw

    try:
        with torch.no_grad():
            latents = pipe(prompt=c["prompt"], num_inference_steps=c["steps"],
                           guidance_scale=c["cfg"], height=64, width=64, generator=gens,
                           output_type="latent",
                           callback_on_step_end=swap if k is not None else None).images
    finally:
        pipe.unet = large
    return (latents,) + decode(pipe, latents)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(DATA, "lcm"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    diffusers.utils.logging.set_verbosity_error()
    os.makedirs(args.out, exist_ok=True)
    pipe, edge, base = build(args.out)
    base.load_lora_weights(os.path.join(DATA, "lora", "kohya.safetensors"), adapter_name="kohya")
    tensors = {}
    for c in CASES:
        latents, image, rgb = run_case(pipe, edge, base, c)
        n = c["name"]
        tensors[f"{n}.latent"] = latents.contiguous()
        tensors[f"{n}.image"] = image.contiguous()
        tensors[f"{n}.rgb"] = rgb.contiguous()
        print(f"{n}: timesteps {pipe.scheduler.timesteps.tolist()}, latent max|x| "
              f"{latents.abs().max():.3f}")
    save_file(tensors, os.path.join(args.out, "goldens.safetensors"),
              metadata={"hsd_oracle": "make_lcm_cases.py"})
    with open(os.path.join(args.out, "cases.json"), "w") as f:
        json.dump({"scheduler_config": LCM_SCHEDULER, "cases": CASES}, f, indent=1)


if __name__ == "__main__":
    main()
