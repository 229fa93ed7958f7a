"""Random SDXL LoRAs in both file formats and diffusers' images with them.

    python tests/oracle/make_lora_sdxl_cases.py [--out tests/data/lora_sdxl]

On the tiny SDXL pipeline of make_sdxl_pipeline_cases.py
(tests/data/pipeline_sdxl/large) writes two random-weight LoRAs covering the
U-Net and both text encoders, as make_lora_cases.py does for SD 1.x:

  <out>/kohya.safetensors  kohya's SDXL names: lora_unet_* with the U-Net's
                           SGM/LDM module paths (input_blocks_4_1_..., as
                           sd-scripts' sdxl_original_unet names them),
                           lora_te1_* / lora_te2_*, rank 4, alpha 2, every
                           layer kohya trains (attention, feed-forward,
                           proj_in/proj_out linears); fp32
  <out>/peft.safetensors   diffusers / PEFT names (unet.*, text_encoder.*,
                           text_encoder_2.*), rank 2, the attention
                           projections only; fp16

and runs StableDiffusionXLPipeline with `load_lora_weights` + `set_adapters`,
writing <out>/cases.json and <out>/goldens.safetensors. diffusers reads the
kohya file through its own SGM-to-diffusers mapping
(lora_conversion_utils._maybe_map_sgm_blocks_to_diffusers), so the goldens
also prove hsd's inverse numbering. Deterministic.
"""

import argparse
import os

os.environ["ATEN_CPU_CAPABILITY"] = "avx2"
os.environ["MKL_ENABLE_INSTRUCTIONS"] = "AVX2"

import torch  # noqa: E402

import diffusers  # noqa: E402
from diffusers import StableDiffusionXLPipeline  # noqa: E402

from ldm_names import diffusers_to_ldm_key  # noqa: E402
from make_lora_cases import CASES, make_kohya, make_peft, write_cases  # noqa: E402
from make_sdxl_pipeline_cases import SDXL_SCHEDULER  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data")
ENCODERS = (("te1", "text_encoder"), ("te2", "text_encoder_2"))
KOHYA_TE = {"te1": "lora_te1_", "te2": "lora_te2_"}


def sgm_namer(unet):
    """diffusers module path -> the SGM/LDM path kohya's SDXL files use."""
    lpb = unet.config.layers_per_block
    up_attn = {i for i, b in enumerate(unet.up_blocks) if hasattr(b, "attentions")}
    return lambda name: diffusers_to_ldm_key(name + ".weight", lpb, up_attn)[:-len(".weight")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(DATA, "lora_sdxl"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    diffusers.utils.logging.set_verbosity_error()
    os.makedirs(args.out, exist_ok=True)
    pipe = StableDiffusionXLPipeline.from_pretrained(
        os.path.join(DATA, "pipeline_sdxl", "large"), torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    gen = torch.Generator().manual_seed(1211)
    files = {n: os.path.join(args.out, n + ".safetensors") for n in ("kohya", "peft")}
    make_kohya(pipe, gen, files["kohya"], ENCODERS, KOHYA_TE, unet_name=sgm_namer(pipe.unet))
    make_peft(pipe, gen, files["peft"], ENCODERS,
              {"te1": "text_encoder.", "te2": "text_encoder_2."})
    write_cases(pipe, files, args.out, CASES, SDXL_SCHEDULER, "make_lora_sdxl_cases.py")


if __name__ == "__main__":
    main()
