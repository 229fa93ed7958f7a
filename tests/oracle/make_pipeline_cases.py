"""Tiny text-to-image pipelines and their diffusers outputs (goldens).

    python tests/oracle/make_pipeline_cases.py [--out tests/data/pipeline]

Assembles a small random-weight StableDiffusionPipeline from the real
architectures (CLIP tokenizer with a reduced vocabulary from
tests/data/tokenizer/tiny, CLIPTextModel, SD1.5-shaped UNet2DConditionModel,
AutoencoderKL, the SD 1.5 PNDM scheduler config) and a BK-SDM-Tiny-shaped
edge U-Net plus a TAESD (AutoencoderTiny), saves them as diffusers folders:

  <out>/large/   model_index.json, tokenizer/, text_encoder/, unet/, vae/,
                 scheduler/, and vae_tiny/ (the TAESD, found by --vae tiny)
  <out>/edge/     unet/ (the edge U-Net) plus copies of the other components

and runs diffusers on a set of requests (samplers, CFG on/off, batch of 2,
non-square, negative prompt) plus Hybrid SD runs that switch to the edge
U-Net after step k with ONE scheduler object (the paper's reference code does
the same in one process), writing <out>/cases.json (the requests) and
<out>/goldens.safetensors: for each case `<name>.noise` (initial N(0,1)
noise per image, before init_noise_sigma), `<name>.latent` (final latents),
`<name>.image` (vae.decode output, float NCHW) and `<name>.rgb` (uint8 HWC
after diffusers' postprocess). The weights are random: images are noise-like.

Weights are stored fp16 and every reference is computed in fp32 from the
fp16-rounded weights, so the files and the goldens agree exactly.
"""

import argparse
import json
import os
import shutil

# Pin torch's CPU kernels so goldens do not depend on the machine (see
# make_sampler_cases.py): the AVX2 normal kernel for torch.randn, and MKL's
# IEEE-exact AVX2 sqrt for the schedulers' sigma tables.
os.environ["ATEN_CPU_CAPABILITY"] = "avx2"
os.environ["MKL_ENABLE_INSTRUCTIONS"] = "AVX2"

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import save_file

import diffusers
from diffusers import (AutoencoderKL, AutoencoderTiny, DDIMScheduler,
                       DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,
                       EulerDiscreteScheduler, PNDMScheduler, StableDiffusionPipeline,
                       UNet2DConditionModel)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data")

# The published SD 1.5 scheduler config (runwayml/stable-diffusion-v1-5).
SD15_SCHEDULER = {
    "_class_name": "PNDMScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "beta_start": 0.00085, "clip_sample": False, "num_train_timesteps": 1000,
    "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1,
    "trained_betas": None,
}

SAMPLERS = {
    "dpmpp-2m": DPMSolverMultistepScheduler, "ddim": DDIMScheduler,
    "euler": EulerDiscreteScheduler, "euler-a": EulerAncestralDiscreteScheduler,
    "pndm": PNDMScheduler,
}

CROSS = 32  # text width = both U-Nets' cross_attention_dim

CASES = [
    dict(name="dpm_cfg", sampler="dpmpp-2m", steps=10, cfg=7.5, seed=0, width=64, height=64,
         batch=1, prompt="a photo of an astronaut riding a horse on mars", negative=None),
    dict(name="eulera_b2", sampler="euler-a", steps=8, cfg=5.0, seed=42, width=128, height=64,
         batch=2, prompt="a watercolor painting of a lighthouse at dusk",
         negative="blurry, low quality"),
    dict(name="ddim_nocfg", sampler="ddim", steps=6, cfg=1.0, seed=7, width=64, height=64,
         batch=1, prompt="an old tree", negative=None),
    dict(name="pndm", sampler="pndm", steps=10, cfg=7.5, seed=1234, width=64, height=128,
         batch=1, prompt="Ein Café in Paris, 1920s, film grain", negative=None),
    dict(name="euler", sampler="euler", steps=7, cfg=3.0, seed=99, width=64, height=64,
         batch=1, prompt="", negative=None),
    # Hybrid SD: large U-Net for steps 0..k-1, edge U-Net for k..N-1.
    dict(name="hybrid_k0", sampler="dpmpp-2m", steps=10, cfg=7.5, seed=5, width=64, height=64,
         batch=1, prompt="a cat wearing sunglasses", negative=None, split=0),
    dict(name="hybrid_k3", sampler="dpmpp-2m", steps=10, cfg=7.5, seed=5, width=64, height=64,
         batch=1, prompt="a cat wearing sunglasses", negative=None, split=3),
    dict(name="hybrid_kN", sampler="dpmpp-2m", steps=10, cfg=7.5, seed=5, width=64, height=64,
         batch=1, prompt="a cat wearing sunglasses", negative=None, split=10),
    dict(name="hybrid_k4_euler_a_tiny", sampler="euler-a", steps=8, cfg=6.0, seed=11,
         width=64, height=64, batch=2, prompt="a red bicycle", negative=None, split=4,
         vae="tiny"),
]


def perturb_norms(model, gen):
    """Non-trivial norm affine parameters (default 1/0 would hide swapped ones)."""
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, (torch.nn.GroupNorm, torch.nn.LayerNorm)) and mod.weight is not None:
                mod.weight.copy_(1.0 + 0.1 * torch.randn(mod.weight.shape, generator=gen))
                if mod.bias is not None:
                    mod.bias.copy_(0.1 * torch.randn(mod.bias.shape, generator=gen))


def fp16_rounded(model):
    """Round weights to fp16 (as stored) and compute in fp32."""
    return model.half().float().eval()


def build(out):
    gen = torch.Generator().manual_seed(2408)
    torch.manual_seed(2408)
    tok = CLIPTokenizer.from_pretrained(os.path.join(DATA, "tokenizer", "tiny"))
    text = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tok), hidden_size=CROSS, intermediate_size=37, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=77, hidden_act="quick_gelu",
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id))
    down = ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"]
    up = ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3
    large = UNet2DConditionModel(
        sample_size=8, block_out_channels=[16, 16, 24, 32], down_block_types=down,
        up_block_types=up, layers_per_block=2, attention_head_dim=8,
        cross_attention_dim=CROSS, norm_num_groups=8)
    edge = UNet2DConditionModel(
        sample_size=8, block_out_channels=[16, 24, 24],
        down_block_types=["CrossAttnDownBlock2D"] * 3, up_block_types=["CrossAttnUpBlock2D"] * 3,
        mid_block_type=None, layers_per_block=1, attention_head_dim=8,
        cross_attention_dim=CROSS, norm_num_groups=8)
    vae = AutoencoderKL(
        block_out_channels=[8, 16, 16, 16], down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4, latent_channels=4, norm_num_groups=4,
        layers_per_block=1, sample_size=64, scaling_factor=0.18215)
    taesd = AutoencoderTiny(
        encoder_block_out_channels=[8, 8, 8, 8], decoder_block_out_channels=[8, 8, 8, 8],
        num_encoder_blocks=[1, 1, 1, 1], num_decoder_blocks=[1, 1, 1, 1], latent_channels=4)
    for m in (text, large, edge, vae, taesd):
        perturb_norms(m, gen)
    # TAESD's decoder expects latents of magnitude ~3; random init keeps the
    # output O(1) either way, which is all a parity golden needs.
    text, large, edge, vae, taesd = (fp16_rounded(m) for m in (text, large, edge, vae, taesd))
    sched = PNDMScheduler.from_config(SD15_SCHEDULER)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=large,
                                   scheduler=sched, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    large_dir, edge_dir = os.path.join(out, "large"), os.path.join(out, "edge")
    for d in (large_dir, edge_dir):
        shutil.rmtree(d, ignore_errors=True)
    # Stored fp16: save half copies (the in-memory models stay fp32 with the
    # same, already rounded, values).
    pipe.to(torch.float16).save_pretrained(large_dir, safe_serialization=True)
    # transformers 5 saves tokenizers as tokenizer.json only; published SD
    # repos ship vocab.json + merges.txt (what hsd reads), so add them.
    tiny_tok = os.path.join(DATA, "tokenizer", "tiny")
    for f in os.listdir(tiny_tok):
        shutil.copy(os.path.join(tiny_tok, f), os.path.join(large_dir, "tokenizer", f))
    # save_pretrained writes every PNDM key, timestep_spacing "leading"
    # included; the published SD 1.5 file has no timestep_spacing (so DPM++
    # and Euler fall back to "linspace"). Keep the published file.
    with open(os.path.join(large_dir, "scheduler", "scheduler_config.json"), "w") as f:
        json.dump(dict(SD15_SCHEDULER, _diffusers_version="0.6.0"), f, indent=2)
    taesd.half().save_pretrained(os.path.join(large_dir, "vae_tiny"), safe_serialization=True)
    edge.half().save_pretrained(os.path.join(edge_dir, "unet"), safe_serialization=True)
    # The edge folder is a whole pipeline too (its own small U-Net, the same
    # tokenizer, text encoder, scheduler and VAEs): an edge worker needs them
    # to finish a cloud RESULT and to generate alone when no cloud answers.
    for part in ("tokenizer", "text_encoder", "scheduler", "vae", "vae_tiny"):
        shutil.copytree(os.path.join(large_dir, part), os.path.join(edge_dir, part))
    pipe.to(torch.float32)
    for m in (edge, taesd):
        m.float()
    return pipe, edge, taesd


def run_case(pipe, edge, taesd, c, sched_config=SD15_SCHEDULER):
    large = pipe.unet
    pipe.scheduler = SAMPLERS[c["sampler"]].from_config(sched_config)
    gens = [torch.Generator().manual_seed(c["seed"] + i) for i in range(c["batch"])]
    h, w = c["height"] // 8, c["width"] // 8
    noise = torch.cat([torch.randn((1, 4, h, w), generator=torch.Generator().manual_seed(
        c["seed"] + i)) for i in range(c["batch"])])
    k = c.get("split")

    def swap(p, i, t, kw):
        # After step i (0-based) the edge U-Net takes over: steps k..N-1.
        if k is not None and i == k - 1:
            p.unet = edge
        return kw

    if k == 0:
        pipe.unet = edge
    extra = {}
    if "original_size" in c:  # SDXL micro-conditioning, (height, width) and (top, left)
        extra["original_size"] = tuple(c["original_size"])
        extra["crops_coords_top_left"] = tuple(c["crop"])
    try:
        with torch.no_grad():
            latents = pipe(prompt=c["prompt"], negative_prompt=c["negative"],
                           num_inference_steps=c["steps"], guidance_scale=c["cfg"],
                           height=c["height"], width=c["width"], generator=gens,
                           num_images_per_prompt=c["batch"], output_type="latent",
                           callback_on_step_end=swap if k is not None else None,
                           **extra).images
    finally:
        pipe.unet = large
    # (SDXL's decode is the same in fp32: no upcasting, no latents_mean.)
    vae = taesd if c.get("vae") == "tiny" else pipe.vae
    with torch.no_grad():
        image = vae.decode(latents / vae.config.scaling_factor).sample
    npimg = pipe.image_processor.postprocess(image, output_type="np")
    rgb = (npimg * 255).round().astype("uint8")  # numpy_to_pil's conversion
    return noise, latents, image, torch.from_numpy(rgb)


def write_goldens(out, pipe, edge, taesd, cases, sched_config, script):
    """Runs every case; writes <out>/goldens.safetensors and <out>/cases.json."""
    tensors = {}
    for c in cases:
        noise, latents, image, rgb = run_case(pipe, edge, taesd, c, sched_config)
        n = c["name"]
        tensors[f"{n}.noise"] = noise.contiguous()
        tensors[f"{n}.latent"] = latents.contiguous()
        tensors[f"{n}.image"] = image.contiguous()
        tensors[f"{n}.rgb"] = rgb.contiguous()
        print(f"{n}: latent max|x| {latents.abs().max():.3f}, image range "
              f"[{image.min():.3f}, {image.max():.3f}]")
    save_file(tensors, os.path.join(out, "goldens.safetensors"), metadata={"hsd_oracle": script})
    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump({"scheduler_config": sched_config, "cases": cases}, f, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(DATA, "pipeline"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    diffusers.utils.logging.set_verbosity_error()
    os.makedirs(args.out, exist_ok=True)
    pipe, edge, taesd = build(args.out)
    write_goldens(args.out, pipe, edge, taesd, CASES, SD15_SCHEDULER, "make_pipeline_cases.py")


if __name__ == "__main__":
    main()
