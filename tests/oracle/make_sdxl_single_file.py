"""SDXL single-file checkpoints and the pipeline folder they come from.

    python tests/oracle/make_sdxl_single_file.py OUTDIR

Builds a small random-weight StableDiffusionXLPipeline with what an SDXL
single file cannot say taken from SDXL-base (CLIP-L's vocabulary in both
tokenizers, tokenizer_2 padding with "!", 64-wide heads in both text
encoders and the U-Net, quick_gelu / gelu, 32 norm groups, the VAE scaling
factor 0.13025, addition_time_embed_dim 256, SDXL-base's Euler scheduler
config, force_zeros_for_empty_prompt) and writes
  OUTDIR/folder/                the diffusers pipeline folder
  OUTDIR/model.safetensors      the same weights as one SDXL file, named by
                                the inverse of diffusers' conversion
                                (ldm_names.py): model.diffusion_model.*
                                (label_emb for add_embedding),
                                conditioner.embedders.0.transformer.* (CLIP-L),
                                conditioner.embedders.1.model.* (OpenCLIP bigG,
                                q/k/v fused into attn.in_proj_*, text_projection
                                stored [width, proj] as OpenCLIP does),
                                first_stage_model.*
  OUTDIR/<v>/unet/, OUTDIR/<v>_unet.safetensors
                                U-Nets alone (VARIANTS: edge = SSD-1B-like,
                                the hybrid test's edge; koala; custom), as a
                                folder and as a U-Net-only file
  OUTDIR/params.json            diffusers' parameter counts of every U-Net
  OUTDIR/ref.png                diffusers' image for the request in REF
  OUTDIR/lora.safetensors       a random kohya SDXL LoRA (SGM U-Net names,
                                lora_te1_/lora_te2_) for the large model
  OUTDIR/ref_lora.png           diffusers' image for REF with it at LORA_SCALE
  OUTDIR/no_bigg.safetensors    an error case: no embedder 1 (small tensors of
                                the other parts)
The large U-Net has SDXL-base's structure (three levels, the first without
attention, two layers each, transformer depths 1/2/10, a mid block) at
narrow widths, so `hsd inspect` can call it SDXL-base from its shapes.

The inverse mapping is proven by diffusers itself: its converters
(convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint,
convert_ldm_clip_checkpoint, convert_open_clip_checkpoint with SDXL's
prefix) must give back exactly the state dicts the file was written from.
The file is ~40 MB (two 49408-row token embeddings, fp16), so the test
writes it (tests/cli/sdxl_single_file.sh).
"""

import argparse
import json
import os
import sys

os.environ["ATEN_CPU_CAPABILITY"] = "avx2"
os.environ["MKL_ENABLE_INSTRUCTIONS"] = "AVX2"

import numpy as np  # noqa: E402
import torch  # noqa: E402
from diffusers import (AutoencoderKL, EulerDiscreteScheduler,  # noqa: E402
                       StableDiffusionXLPipeline, UNet2DConditionModel)
from diffusers.loaders import single_file_utils as conv  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from ldm_names import (diffusers_to_ldm_clip, diffusers_to_ldm_openclip,  # noqa: E402
                       diffusers_to_ldm_unet, diffusers_to_ldm_vae)
from make_lora_cases import make_kohya  # noqa: E402
from make_lora_sdxl_cases import ENCODERS, KOHYA_TE, sgm_namer  # noqa: E402
from make_sdxl_pipeline_cases import SDXL_SCHEDULER  # noqa: E402
from make_single_file import VAE, same  # noqa: E402
from tiny_tokenizer import build_full_tokenizer  # noqa: E402

CLIP_PREFIX = "conditioner.embedders.0.transformer."
BIGG_PREFIX = "conditioner.embedders.1.model."
C1, C2, PROJ, ADD_DIM = 64, 128, 96, 256  # SDXL: 768, 1280, 1280, 256
TEXT = dict(vocab_size=49408, intermediate_size=96, num_hidden_layers=3,
            max_position_embeddings=77, layer_norm_eps=1e-5, bos_token_id=0, eos_token_id=2,
            pad_token_id=1)
UNET = dict(sample_size=8, in_channels=4, out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            block_out_channels=(32, 64, 64), attention_head_dim=(1, 1, 1), norm_num_groups=32,
            cross_attention_dim=C1 + C2, use_linear_projection=True,
            addition_embed_type="text_time", addition_time_embed_dim=ADD_DIM,
            projection_class_embeddings_input_dim=PROJ + 6 * ADD_DIM)
LARGE = dict(UNET, layers_per_block=2, transformer_layers_per_block=(1, 2, 10))
# U-Nets alone, one per variant `hsd inspect` names (host/models/unet_build.c
# sdxl_family), each written as a folder and as a U-Net-only file; "edge"
# (SSD-1B's kind: depths given per layer, diffusers' asymmetrical U-Net) is
# also the hybrid test's edge model.
VARIANTS = {
    "edge": dict(UNET, layers_per_block=1, transformer_layers_per_block=(1, [1], [2]),
                 reverse_transformer_layers_per_block=([2, 1], [1, 1], 1)),
    # KOALA's kind: one layer per block, shallower stacks, no mid block.
    "koala": dict(UNET, layers_per_block=1, transformer_layers_per_block=(1, 1, 2),
                  mid_block_type=None),
    # Two levels: no published SDXL family.
    "custom": dict(UNET, down_block_types=UNET["down_block_types"][1:],
                   up_block_types=UNET["up_block_types"][:2], block_out_channels=(32, 64),
                   attention_head_dim=(1, 1), layers_per_block=1),
}
REF = dict(prompt="a lighthouse at dusk", negative_prompt="blurry", width=64, height=64,
           num_inference_steps=4, guidance_scale=5.0, seed=11)
LORA_SCALE = 0.7


def write_file(path, unet, vae, text, text2):
    sd = diffusers_to_ldm_unet(unet.state_dict(), unet.config.layers_per_block)
    sd.update(diffusers_to_ldm_vae(vae.state_dict(), len(vae.config.block_out_channels)))
    sd.update(diffusers_to_ldm_clip(text.state_dict(), CLIP_PREFIX))
    t2 = {k: v for k, v in text2.state_dict().items() if k != "text_projection.weight"}
    proj = text2.text_projection.weight.T  # OpenCLIP applies x @ P, P: [width, proj]
    sd.update(diffusers_to_ldm_openclip(t2, {}, proj, BIGG_PREFIX))
    sd = {k: v.contiguous() for k, v in sd.items()}
    same("sdxl unet", conv.convert_ldm_unet_checkpoint(sd, dict(unet.config)), unet.state_dict())
    same("sdxl vae", conv.convert_ldm_vae_checkpoint(sd, dict(vae.config)), vae.state_dict())
    want = text.state_dict()
    clip = conv.convert_ldm_clip_checkpoint(sd)
    same("sdxl clip-l", {k if k in want else k.removeprefix("text_model."): v
                         for k, v in clip.items()}, want)
    same("sdxl bigG", conv.convert_open_clip_checkpoint(text2, sd, prefix=BIGG_PREFIX),
         text2.state_dict())
    save_file(sd, path)
    return sd


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    out = ap.parse_args().out
    torch.set_num_threads(1)
    torch.manual_seed(1234)
    text = CLIPTextModel(CLIPTextConfig(**TEXT, hidden_size=C1, num_attention_heads=C1 // 64,
                                        hidden_act="quick_gelu")).eval()
    text2 = CLIPTextModelWithProjection(CLIPTextConfig(
        **TEXT, hidden_size=C2, num_attention_heads=C2 // 64, hidden_act="gelu",
        projection_dim=PROJ)).eval()
    unet = UNet2DConditionModel(**LARGE).eval()
    vae = AutoencoderKL(**dict(VAE, scaling_factor=0.13025, force_upcast=True)).eval()
    # fp16 storage (the 49408-row embeddings dominate); every reference
    # below runs in fp32 on the fp16-rounded weights, as hsd does.
    for m in (text, text2, unet, vae):
        m.half().float()
    sched = EulerDiscreteScheduler.from_config(SDXL_SCHEDULER)
    folder = os.path.join(out, "folder")
    os.makedirs(folder, exist_ok=True)
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=text, text_encoder_2=text2,
                                     tokenizer=None, tokenizer_2=None, unet=unet,
                                     scheduler=sched, force_zeros_for_empty_prompt=True,
                                     add_watermarker=False)
    pipe.to(torch.float16).save_pretrained(folder, safe_serialization=True)
    pipe.to(torch.float32)
    build_full_tokenizer(os.path.join(folder, "tokenizer"), style="sd15")
    build_full_tokenizer(os.path.join(folder, "tokenizer_2"), style="sd2")
    with open(os.path.join(folder, "model_index.json")) as f:
        index = json.load(f)
    index.update(tokenizer=["transformers", "CLIPTokenizer"],
                 tokenizer_2=["transformers", "CLIPTokenizer"])
    with open(os.path.join(folder, "model_index.json"), "w") as f:
        json.dump(index, f, indent=2)
    with open(os.path.join(folder, "scheduler", "scheduler_config.json"), "w") as f:
        json.dump(SDXL_SCHEDULER, f, indent=2)
    for m in (text, text2, unet, vae):
        m.half()
    sd = write_file(os.path.join(out, "model.safetensors"), unet, vae, text, text2)
    for m in (text, text2, unet, vae):
        m.float()

    params = {"large": unet.num_parameters()}
    for name, cfg in VARIANTS.items():
        u = UNet2DConditionModel(**cfg).eval().half()
        u.save_pretrained(os.path.join(out, name, "unet"), safe_serialization=True)
        usd = {k: v.contiguous() for k, v in
               diffusers_to_ldm_unet(u.state_dict(), u.config.layers_per_block).items()}
        same(f"sdxl {name} unet", conv.convert_ldm_unet_checkpoint(usd, dict(u.config)),
             u.state_dict())
        save_file(usd, os.path.join(out, name + "_unet.safetensors"))
        params[name] = u.num_parameters()
    with open(os.path.join(out, "params.json"), "w") as f:
        json.dump(params, f)
    # hsd refuses it from the key names alone: one small tensor per part.
    parts = ("model.diffusion_model.", "first_stage_model.", CLIP_PREFIX)
    save_file({k: sd[k] for k in (min((k for k in sd if k.startswith(p)),
                                      key=lambda k: sd[k].numel()) for p in parts)},
              os.path.join(out, "no_bigg.safetensors"))

    # diffusers' own pipeline on the folder: the images hsd must match,
    # without and with a random kohya LoRA (SGM U-Net names, both encoders)
    # at scale LORA_SCALE.
    pipe = StableDiffusionXLPipeline.from_pretrained(folder, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    write_ref(pipe, os.path.join(out, "ref.png"))
    lora = os.path.join(out, "lora.safetensors")
    make_kohya(pipe, torch.Generator().manual_seed(77), lora, ENCODERS, KOHYA_TE,
               unet_name=sgm_namer(pipe.unet))
    pipe.load_lora_weights(lora, adapter_name="lora")
    pipe.set_adapters(["lora"], adapter_weights=[LORA_SCALE])
    write_ref(pipe, os.path.join(out, "ref_lora.png"))
    print(f"wrote {out}")


def write_ref(pipe, path):
    r = dict(REF)
    img = pipe(r.pop("prompt"), generator=torch.Generator().manual_seed(r.pop("seed")),
               output_type="np", **r).images[0]
    Image.fromarray((img * 255).round().astype(np.uint8)).save(path)


if __name__ == "__main__":
    main()
