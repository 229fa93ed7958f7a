"""Tiny SDXL pipelines and their diffusers outputs (goldens).

    python tests/oracle/make_sdxl_pipeline_cases.py [--out tests/data/pipeline_sdxl]

Assembles a small random-weight StableDiffusionXLPipeline from SDXL's
architectures: two CLIP tokenizers (the tiny vocabulary of
tests/data/tokenizer/tiny; tokenizer_2 pads with "!" as SDXL's does), a
CLIPTextModel and a CLIPTextModelWithProjection (eos_token_id 2 as SDXL's
configs say), an SDXL-shaped UNet2DConditionModel (first level without
attention, per-block transformer depths, linear projections, "text_time"
added conditioning), an AutoencoderKL with SDXL's scaling factor 0.13025,
SDXL-base's Euler scheduler config, plus a KOALA-like edge U-Net (one layer
per block, shallower stacks, no mid block) and a TAESDXL-style
AutoencoderTiny, and writes

  <out>/large/       model_index.json, tokenizer/, tokenizer_2/, text_encoder/,
                     text_encoder_2/, unet/, vae/, scheduler/, vae_tiny/
  <out>/edge/unet/   the edge U-Net
  <out>/edge_sharded/unet/  the same weights as diffusers saves them with
                     variant="fp16" and max_shard_size (an index + shards)
  <out>/cases.json   the requests
  <out>/goldens.safetensors
      per case `<name>.noise` (initial N(0,1) noise per image), `.latent`
      (final latents), `.image` (vae.decode output), `.rgb` (uint8 HWC)

The cases: three samplers and two more, CFG on and off, no negative prompt
(force_zeros_for_empty_prompt: zero negative embeddings), an explicit
negative prompt, an explicit empty one (encoded, not zeroed), a non-square
size, micro-conditioning (original size, crop), batch 2, and Hybrid SD
splits that switch to the edge U-Net after step k with ONE scheduler object
(one with the tiny VAE). Weights are stored fp16 and every reference is
computed in fp32 from the fp16-rounded weights. Images are 32x32 or 64x32
pixels so the goldens stay small.
"""

import argparse
import json
import os
import shutil

# Pin torch's CPU kernels as make_pipeline_cases.py does (torch.randn's AVX2
# kernel, MKL's AVX2 sqrt for the sigma tables).
os.environ["ATEN_CPU_CAPABILITY"] = "avx2"
os.environ["MKL_ENABLE_INSTRUCTIONS"] = "AVX2"

import torch  # noqa: E402

import diffusers  # noqa: E402
from diffusers import (AutoencoderKL, AutoencoderTiny, StableDiffusionXLPipeline,  # noqa: E402
                       UNet2DConditionModel)
from transformers import (CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection,  # noqa: E402
                          CLIPTokenizer)

from make_pipeline_cases import (SAMPLERS, fp16_rounded, perturb_norms,  # noqa: E402
                                 write_goldens)

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data")

# stabilityai/stable-diffusion-xl-base-1.0 scheduler/scheduler_config.json
SDXL_SCHEDULER = {
    "_class_name": "EulerDiscreteScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "beta_start": 0.00085, "clip_sample": False, "interpolation_type": "linear",
    "num_train_timesteps": 1000, "prediction_type": "epsilon", "sample_max_value": 1.0,
    "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1,
    "timestep_spacing": "leading", "trained_betas": None, "use_karras_sigmas": False,
}

C1, C2, POOLED, ADD_DIM = 16, 24, 16, 4  # widths: 768, 1280, 1280 and 256 in SDXL

CASES = [
    dict(name="euler_cfg", sampler="euler", steps=8, cfg=5.0, seed=1234, width=32, height=32,
         batch=1, prompt="a photo of an astronaut riding a horse on mars", negative=None),
    dict(name="dpm_neg_nonsquare", sampler="dpmpp-2m", steps=8, cfg=7.0, seed=7, width=64,
         height=32, batch=1, prompt="a lighthouse at dusk, oil painting",
         negative="blurry, low quality", original_size=[1024, 768], crop=[16, 32]),
    dict(name="ddim_nocfg", sampler="ddim", steps=6, cfg=1.0, seed=3, width=32, height=32,
         batch=1, prompt="an old tree", negative=None),
    dict(name="eulera_b2_empty_neg", sampler="euler-a", steps=6, cfg=4.0, seed=42, width=32,
         height=32, batch=2, prompt="a red bicycle", negative=""),
    dict(name="pndm", sampler="pndm", steps=5, cfg=6.0, seed=9, width=32, height=32, batch=1,
         prompt="Ein Café in Paris", negative=None),
    # Hybrid SD: the SDXL U-Net for steps 0..k-1, the KOALA-like one after.
    dict(name="hybrid_k3", sampler="dpmpp-2m", steps=8, cfg=6.0, seed=5, width=32, height=32,
         batch=1, prompt="a cat wearing sunglasses", negative=None, split=3),
    dict(name="hybrid_k2_euler_tiny", sampler="euler", steps=6, cfg=5.0, seed=11, width=32,
         height=32, batch=1, prompt="a cat wearing sunglasses", negative="dark", split=2,
         vae="tiny"),
]


def sdxl_unet(**kw):
    return UNet2DConditionModel(
        sample_size=4, down_block_types=["DownBlock2D", "CrossAttnDownBlock2D",
                                         "CrossAttnDownBlock2D"],
        up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
        block_out_channels=[8, 8, 16], attention_head_dim=[1, 1, 2], cross_attention_dim=C1 + C2,
        norm_num_groups=4, use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=ADD_DIM,
        projection_class_embeddings_input_dim=POOLED + 6 * ADD_DIM, **kw)


def text_encoder(cls, tok, hidden, act, **kw):
    return cls(CLIPTextConfig(
        vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden,
        num_hidden_layers=3, num_attention_heads=hidden // 8, max_position_embeddings=77,
        hidden_act=act, bos_token_id=0, eos_token_id=2, pad_token_id=1, **kw))


def save_tokenizer(tok_dir, pad):
    """The tiny tokenizer's files (vocab.json + merges.txt, as SDXL repos ship
    them) with `pad` as its pad token."""
    tiny = os.path.join(DATA, "tokenizer", "tiny")
    shutil.copytree(tiny, tok_dir)
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        path = os.path.join(tok_dir, name)
        with open(path) as f:
            cfg = json.load(f)
        cfg["pad_token"] = pad
        with open(path, "w") as f:
            json.dump(cfg, f, indent=2)
    return CLIPTokenizer.from_pretrained(tok_dir)


def build(out):
    gen = torch.Generator().manual_seed(2408)
    torch.manual_seed(2408)
    large_dir = os.path.join(out, "large")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(large_dir)
    tok = save_tokenizer(os.path.join(out, "tok1"), "<|endoftext|>")
    tok2 = save_tokenizer(os.path.join(out, "tok2"), "!")
    assert tok2.pad_token_id == tok2.convert_tokens_to_ids("!") != tok.pad_token_id
    text = text_encoder(CLIPTextModel, tok, C1, "quick_gelu")
    text2 = text_encoder(CLIPTextModelWithProjection, tok2, C2, "gelu", projection_dim=POOLED)
    large = sdxl_unet(layers_per_block=2, transformer_layers_per_block=[1, 2, 2])
    edge = sdxl_unet(layers_per_block=1, transformer_layers_per_block=[1, 1, 1],
                     mid_block_type=None)
    vae = AutoencoderKL(
        block_out_channels=[8, 8, 8, 8], down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4, latent_channels=4, norm_num_groups=4,
        layers_per_block=1, sample_size=32, scaling_factor=0.13025, force_upcast=True)
    taesd = AutoencoderTiny(
        encoder_block_out_channels=[8, 8, 8, 8], decoder_block_out_channels=[8, 8, 8, 8],
        num_encoder_blocks=[1, 1, 1, 1], num_decoder_blocks=[1, 1, 1, 1], latent_channels=4)
    for m in (text, text2, large, edge, vae, taesd):
        perturb_norms(m, gen)
    text, text2, large, edge, vae, taesd = (fp16_rounded(m)
                                            for m in (text, text2, large, edge, vae, taesd))
    sched = SAMPLERS["euler"].from_config(SDXL_SCHEDULER)
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=text, text_encoder_2=text2,
                                     tokenizer=tok, tokenizer_2=tok2, unet=large,
                                     scheduler=sched, force_zeros_for_empty_prompt=True,
                                     add_watermarker=False)
    pipe.set_progress_bar_config(disable=True)
    pipe.to(torch.float16).save_pretrained(large_dir, safe_serialization=True)
    # transformers 5 saves tokenizer.json only; SDXL repos ship vocab.json +
    # merges.txt (what hsd reads): keep the files built above.
    for part, src in (("tokenizer", "tok1"), ("tokenizer_2", "tok2")):
        shutil.rmtree(os.path.join(large_dir, part))
        shutil.move(os.path.join(out, src), os.path.join(large_dir, part))
    with open(os.path.join(large_dir, "scheduler", "scheduler_config.json"), "w") as f:
        json.dump(dict(SDXL_SCHEDULER, _diffusers_version="0.19.0.dev0"), f, indent=2)
    taesd.half().save_pretrained(os.path.join(large_dir, "vae_tiny"), safe_serialization=True)
    edge.half().save_pretrained(os.path.join(out, "edge", "unet"), safe_serialization=True)
    # The same edge U-Net as large repos store theirs: fp16 variant, sharded
    # (diffusion_pytorch_model.safetensors.index.fp16.json + shards).
    edge.save_pretrained(os.path.join(out, "edge_sharded", "unet"), safe_serialization=True,
                         variant="fp16", max_shard_size="60KB")
    pipe.to(torch.float32)
    for m in (edge, taesd):
        m.float()
    return pipe, edge, taesd


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(DATA, "pipeline_sdxl"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    diffusers.utils.logging.set_verbosity_error()
    pipe, edge, taesd = build(args.out)
    write_goldens(args.out, pipe, edge, taesd, CASES, SDXL_SCHEDULER,
                  "make_sdxl_pipeline_cases.py")


if __name__ == "__main__":
    main()
