"""Full-size random-weight SD 1.5 pipeline + BK-SDM-Tiny edge U-Net (not committed).

    python tests/oracle/make_full_pipeline.py OUTDIR

Writes OUTDIR/large (a StableDiffusionPipeline folder with the published SD
1.5 configs: CLIP ViT-L/14 text encoder, SD VAE, SD 1.5 U-Net, PNDM
scheduler config, and the real CLIP vocabulary built from
bpe_simple_vocab_16e6.txt.gz, plus a TAESD — diffusers' default
AutoencoderTiny config — as large/vae_tiny) and OUTDIR/edge (BK-SDM-Tiny
U-Net in edge/unet; the other parts linked to large's, so edge is a whole
pipeline as an edge worker holds one), weights random (default init,
seeded) and stored fp16 — about 2.7 GB. Parts already written are kept, so
a rerun only adds what is missing. Used by bench/cpu_vs_peers.sh for CPU
timing; weights are random, so images are noise-like and no golden is
written.
"""

import argparse
import json
import os
import sys

import torch

import diffusers
from diffusers import AutoencoderKL, AutoencoderTiny, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_pipeline_cases import SD15_SCHEDULER  # noqa: E402
from make_sd15_full import BKSDM_TINY_UNET_CONFIG, SD15_UNET_CONFIG  # noqa: E402
from tiny_tokenizer import build_full_tokenizer  # noqa: E402

# openai/clip-vit-large-patch14 text config as SD 1.5 ships it.
SD15_TEXT = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072,
                 num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=77,
                 hidden_act="quick_gelu", layer_norm_eps=1e-5, bos_token_id=49406,
                 eos_token_id=49407, pad_token_id=1, projection_dim=768)
# The SD 1.x VAE (AutoencoderKL) config.
SD_VAE = dict(in_channels=3, out_channels=3, latent_channels=4,
              block_out_channels=[128, 256, 512, 512], layers_per_block=2,
              down_block_types=["DownEncoderBlock2D"] * 4,
              up_block_types=["UpDecoderBlock2D"] * 4, norm_num_groups=32,
              sample_size=512, scaling_factor=0.18215)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outdir")
    a = ap.parse_args()
    diffusers.utils.logging.set_verbosity_error()
    torch.manual_seed(1505)
    large = os.path.join(a.outdir, "large")
    edge = os.path.join(a.outdir, "edge")

    def missing(path):
        return not os.path.isdir(path)

    if missing(os.path.join(large, "text_encoder")):
        CLIPTextModel(CLIPTextConfig(**SD15_TEXT)).half().save_pretrained(
            os.path.join(large, "text_encoder"), safe_serialization=True)
    if missing(os.path.join(large, "vae")):
        AutoencoderKL(**SD_VAE).half().save_pretrained(os.path.join(large, "vae"))
    if missing(os.path.join(large, "unet")):
        UNet2DConditionModel(**SD15_UNET_CONFIG).half().save_pretrained(
            os.path.join(large, "unet"))
    if missing(os.path.join(edge, "unet")):
        UNet2DConditionModel(**BKSDM_TINY_UNET_CONFIG).half().save_pretrained(
            os.path.join(edge, "unet"))
    if missing(os.path.join(large, "vae_tiny")):
        # AutoencoderTiny's defaults are TAESD's (madebyollin/taesd).
        AutoencoderTiny().half().save_pretrained(os.path.join(large, "vae_tiny"))
    if missing(os.path.join(large, "tokenizer")):
        build_full_tokenizer(os.path.join(large, "tokenizer"))
    os.makedirs(os.path.join(large, "scheduler"), exist_ok=True)
    with open(os.path.join(large, "scheduler", "scheduler_config.json"), "w") as f:
        json.dump(SD15_SCHEDULER, f, indent=2)
    for part in ("tokenizer", "text_encoder", "scheduler", "vae", "vae_tiny"):
        if not os.path.lexists(os.path.join(edge, part)):
            os.symlink(os.path.join("..", "large", part), os.path.join(edge, part))
    print(f"wrote {a.outdir}/large and {a.outdir}/edge")


if __name__ == "__main__":
    main()
