"""SD 1.x single-file checkpoints and the pipeline folders they come from.

    python tests/oracle/make_single_file.py OUTDIR

Builds a small random-weight pipeline with SD 1.x's conventions (what a
single file cannot say is SD 1.x's: CLIP-L's vocabulary, 64-wide text heads,
8 U-Net heads, 32 norm groups, the SD 1.5 scheduler and tokenizer) and writes
  OUTDIR/folder/            the diffusers pipeline folder (tokenizer/ from
                            the vendored bpe_simple_vocab_16e6.txt.gz)
  OUTDIR/model.safetensors  the same weights as one CompVis/LDM file, named
                            by the inverse of diffusers' conversion
                            (ldm_names.py), CLIP's position_ids included as
                            real A1111 files carry it
  OUTDIR/edge/              a second (edge) pipeline folder: its own U-Net,
                            the large model's text encoder, VAE, tokenizer
  OUTDIR/edge_unet.safetensors  the edge U-Net alone (model.diffusion_model.*)
  OUTDIR/edge.safetensors   the edge pipeline as one file
and error cases: sd2_partial.safetensors / sdxl.safetensors (a U-Net plus
a text-encoder key of those families), no_vae.safetensors, model.ckpt.

SD 2.x, the same way (64-wide U-Net heads, linear projections, an OpenCLIP
text tower of 24 blocks whose penultimate output is the 23-layer
CLIPTextModel diffusers builds, gelu, the SD 2.1 tokenizer padding with "!",
the SD 2.1 scheduler config with v_prediction):
  OUTDIR/sd2_folder/        the diffusers folder
  OUTDIR/sd2.safetensors    the same weights as one file (OpenCLIP names,
                            q/k/v fused into attn.in_proj_*), checked with
                            diffusers' convert_open_clip_checkpoint and
                            from_single_file

The inverse mapping is proven by diffusers itself, offline: its single-file
converters (single_file_utils convert_ldm_unet_checkpoint,
convert_ldm_vae_checkpoint, convert_ldm_clip_checkpoint) must give back
exactly the state dicts the file was written from, and
StableDiffusionPipeline.from_single_file with the folder as its local config
must load the same weights. The files are ~80 MB (CLIP-L's 49408 x 768 token
embedding, fp16), so tests generate them (tests/cli/single_file.sh).
"""

import argparse
import json
import os
import shutil
import sys

import torch
from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
from diffusers.loaders.single_file_utils import (convert_ldm_clip_checkpoint,
                                                 convert_ldm_unet_checkpoint,
                                                 convert_ldm_vae_checkpoint,
                                                 convert_open_clip_checkpoint)
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from ldm_names import (diffusers_to_ldm_clip, diffusers_to_ldm_openclip,  # noqa: E402
                       diffusers_to_ldm_unet, diffusers_to_ldm_vae)
from make_pipeline_cases import SD15_SCHEDULER  # noqa: E402
from tiny_tokenizer import build_full_tokenizer  # noqa: E402

# CLIP-L's vocabulary and head width (64) and positions; few, narrow layers.
TEXT = dict(vocab_size=49408, hidden_size=768, intermediate_size=96, num_hidden_layers=2,
            num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
            layer_norm_eps=1e-5, bos_token_id=49406, eos_token_id=49407, pad_token_id=1)
# SD 1.x U-Net conventions (attention_head_dim 8 = 8 heads, context 768,
# 32 groups), two narrow levels.
UNET = dict(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
            block_out_channels=(32, 64), norm_num_groups=32, cross_attention_dim=768,
            attention_head_dim=8,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))
EDGE_UNET = dict(UNET, block_out_channels=(32, 32))
# SD's VAE conventions (4 levels: scale 8, 32 groups), narrow; the width
# change between levels gives resnets a nin_shortcut on both sides.
VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 32, 64, 64),
           layers_per_block=1, down_block_types=("DownEncoderBlock2D",) * 4,
           up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=32, sample_size=64)


# SD 2.x: OpenCLIP-H's vocabulary, positions and 64-wide heads, gelu; the
# file holds 24 blocks, diffusers' encoder the first 23 (penultimate layer).
TEXT2 = dict(TEXT, hidden_size=128, intermediate_size=64, num_hidden_layers=23,
             num_attention_heads=2, hidden_act="gelu", pad_token_id=0)
# SD 2.x U-Net: attention_head_dim = heads = channels / 64, linear proj_in/out.
UNET2 = dict(UNET, block_out_channels=(64, 128), attention_head_dim=(1, 2),
             cross_attention_dim=128, use_linear_projection=True)
# stabilityai/stable-diffusion-2-1 scheduler/scheduler_config.json.
SD21_SCHEDULER = dict(SD15_SCHEDULER, _class_name="DDIMScheduler", prediction_type="v_prediction")


def same(name, got, want):
    """got/want: state dicts; every key and every value must match exactly."""
    if set(got) != set(want):
        raise SystemExit(f"{name}: keys differ: missing {sorted(set(want) - set(got))[:5]}, "
                         f"extra {sorted(set(got) - set(want))[:5]}")
    for k in want:
        if not torch.equal(got[k].reshape(want[k].shape), want[k]):
            raise SystemExit(f"{name}: tensor {k} differs after diffusers' conversion")
    print(f"{name}: {len(want)} tensors round-trip through diffusers' converter")


def single_file(unet, vae=None, text=None):
    sd = diffusers_to_ldm_unet(unet.state_dict(), unet.config.layers_per_block)
    if vae is not None:
        sd.update(diffusers_to_ldm_vae(vae.state_dict(), len(vae.config.block_out_channels)))
    if text is not None:
        sd.update(diffusers_to_ldm_clip(text.state_dict()))
        sd["cond_stage_model.transformer.text_model.embeddings.position_ids"] = \
            torch.arange(TEXT["max_position_embeddings"], dtype=torch.int64)[None]
    return {k: v.contiguous() for k, v in sd.items()}


def check_converters(sd, unet, vae, text):
    same("unet", convert_ldm_unet_checkpoint(sd, dict(unet.config)), unet.state_dict())
    same("vae", convert_ldm_vae_checkpoint(sd, dict(vae.config)), vae.state_dict())
    clip = convert_ldm_clip_checkpoint(sd)
    clip.pop("text_model.embeddings.position_ids")
    want = text.state_dict()
    # transformers >= 5.6 names CLIPTextModel's weights without text_model.
    same("clip", {k if k in want else k.removeprefix("text_model."): v for k, v in clip.items()},
         want)


def write_folder(root, unet, vae, text, sd2=False):
    os.makedirs(root, exist_ok=True)
    unet.save_pretrained(os.path.join(root, "unet"))
    vae.save_pretrained(os.path.join(root, "vae"))
    text.save_pretrained(os.path.join(root, "text_encoder"))
    build_full_tokenizer(os.path.join(root, "tokenizer"), style="sd2" if sd2 else "sd15")
    os.makedirs(os.path.join(root, "scheduler"), exist_ok=True)
    sched = SD21_SCHEDULER if sd2 else SD15_SCHEDULER
    with open(os.path.join(root, "scheduler", "scheduler_config.json"), "w") as f:
        json.dump(sched, f, indent=2)
    index = {"_class_name": "StableDiffusionPipeline", "feature_extractor": [None, None],
             "requires_safety_checker": False, "safety_checker": [None, None],
             "scheduler": ["diffusers", sched["_class_name"]],
             "text_encoder": ["transformers", "CLIPTextModel"],
             "tokenizer": ["transformers", "CLIPTokenizer"],
             "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]}
    with open(os.path.join(root, "model_index.json"), "w") as f:
        json.dump(index, f, indent=2)


def check_from_single_file(path, folder, unet, vae, text):
    """diffusers' own single-file loader, configured by the local folder."""
    pipe = StableDiffusionPipeline.from_single_file(path, config=folder, local_files_only=True,
                                                    safety_checker=None,
                                                    torch_dtype=torch.float32)
    for name, got, want in (("from_single_file unet", pipe.unet, unet),
                            ("from_single_file vae", pipe.vae, vae),
                            ("from_single_file text_encoder", pipe.text_encoder, text)):
        g = got.state_dict()
        w = want.state_dict()
        same(name, {k: g[k].to(w[k].dtype) for k in g if k in w or "position_ids" not in k}, w)


def write_sd2(out, vae):
    """The SD 2.x folder and file (module docstring)."""
    torch.manual_seed(2402)
    unet = UNet2DConditionModel(**UNET2).eval()
    text = CLIPTextModel(CLIPTextConfig(**TEXT2)).eval().half()
    # The block diffusers' converter leaves out, and the projection it skips:
    # random, so that reading them would change the result.
    w, f = TEXT2["hidden_size"], TEXT2["intermediate_size"]
    r = lambda *shape: (0.02 * torch.randn(*shape)).half()  # noqa: E731
    extra = {"ln_1.weight": r(w), "ln_1.bias": r(w), "attn.in_proj_weight": r(3 * w, w),
             "attn.in_proj_bias": r(3 * w), "attn.out_proj.weight": r(w, w),
             "attn.out_proj.bias": r(w), "ln_2.weight": r(w), "ln_2.bias": r(w),
             "mlp.c_fc.weight": r(f, w), "mlp.c_fc.bias": r(f), "mlp.c_proj.weight": r(w, f),
             "mlp.c_proj.bias": r(w)}
    sd = diffusers_to_ldm_unet(unet.state_dict(), unet.config.layers_per_block)
    sd.update(diffusers_to_ldm_vae(vae.state_dict(), len(vae.config.block_out_channels)))
    sd.update(diffusers_to_ldm_openclip(text.state_dict(), extra, r(w, w)))
    sd = {k: v.contiguous() for k, v in sd.items()}
    same("sd2 unet", convert_ldm_unet_checkpoint(sd, dict(unet.config)), unet.state_dict())
    want = text.state_dict()
    conv = convert_open_clip_checkpoint(text, sd)
    same("sd2 openclip", {k if k in want else k.removeprefix("text_model."): v
                          for k, v in conv.items()}, want)
    folder = os.path.join(out, "sd2_folder")
    write_folder(folder, unet, vae, text, sd2=True)
    path = os.path.join(out, "sd2.safetensors")
    save_file(sd, path)
    check_from_single_file(path, folder, unet, vae, text)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    out = ap.parse_args().out
    torch.manual_seed(1234)
    unet = UNet2DConditionModel(**UNET).eval()
    edge_unet = UNet2DConditionModel(**EDGE_UNET).eval()
    vae = AutoencoderKL(**VAE).eval()
    # fp16 storage halves the 49408 x 768 embedding; hsd reads both the
    # folder and the file as fp16 and widens them the same way.
    text = CLIPTextModel(CLIPTextConfig(**TEXT)).eval().half()

    sd = single_file(unet, vae, text)
    check_converters(sd, unet, vae, text)
    folder = os.path.join(out, "folder")
    write_folder(folder, unet, vae, text)
    save_file(sd, os.path.join(out, "model.safetensors"))
    check_from_single_file(os.path.join(out, "model.safetensors"), folder, unet, vae, text)

    edge = os.path.join(out, "edge")
    os.makedirs(edge, exist_ok=True)
    edge_unet.save_pretrained(os.path.join(edge, "unet"))
    for part in ("vae", "text_encoder", "tokenizer", "scheduler", "model_index.json"):
        os.symlink(os.path.join("..", "folder", part), os.path.join(edge, part))
    edge_sd = single_file(edge_unet)
    same("edge unet", convert_ldm_unet_checkpoint(edge_sd, dict(edge_unet.config)),
         edge_unet.state_dict())
    save_file(edge_sd, os.path.join(out, "edge_unet.safetensors"))
    save_file(single_file(edge_unet, vae, text), os.path.join(out, "edge.safetensors"))

    # Error cases, small (hsd refuses them from the key names alone): one
    # marker tensor of another family, the VAE left out, a pickle's name.
    marker = {"cond_stage_model.transformer.text_model.final_layer_norm.weight": torch.zeros(1)}
    for name, extra in (("sd2_partial", {"cond_stage_model.model.ln_final.weight": torch.zeros(1)}),
                        ("sdxl", {"conditioner.embedders.1.model.ln_final.weight": torch.zeros(1)}),
                        ("no_vae", marker)):
        save_file(dict(edge_sd, **extra), os.path.join(out, name + ".safetensors"))
    shutil.copyfile(os.path.join(out, "edge_unet.safetensors"), os.path.join(out, "model.ckpt"))
    write_sd2(out, vae)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
