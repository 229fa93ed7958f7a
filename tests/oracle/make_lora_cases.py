"""Random LoRAs in both file formats and diffusers' images with them.

    python tests/oracle/make_lora_cases.py [--out tests/data/lora]

On the tiny pipeline of make_pipeline_cases.py (tests/data/pipeline/large)
writes two random-weight LoRAs covering the U-Net and the text encoder:

  <out>/kohya.safetensors  kohya / A1111 names (lora_unet_*, lora_te_*,
                           lora_down/lora_up, .alpha), rank 4, alpha 2,
                           every layer kohya trains: attention q/k/v/out,
                           feed-forward, proj_in/proj_out (1x1 convolutions
                           in SD 1.x, stored [r, c, 1, 1]); fp32
  <out>/peft.safetensors   diffusers / PEFT names (unet.*, text_encoder.*,
                           lora_A/lora_B, no alpha: scale 1), rank 2, the
                           attention projections only (diffusers' default
                           target_modules); fp16

and runs StableDiffusionPipeline with `load_lora_weights` + `set_adapters`
(the adapter scales) on a few requests, writing <out>/cases.json and
<out>/goldens.safetensors (`<case>.latent`, `<case>.image`, `<case>.rgb`, as
make_pipeline_cases.py does). diffusers reads both formats with its own
converters (lora_conversion_utils.py), so the goldens also prove the
files are what each format means. Deterministic.
"""

import argparse
import json
import os

os.environ["ATEN_CPU_CAPABILITY"] = "avx2"
os.environ["MKL_ENABLE_INSTRUCTIONS"] = "AVX2"

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

import diffusers  # noqa: E402
from diffusers import StableDiffusionPipeline  # noqa: E402

from make_pipeline_cases import SAMPLERS, SD15_SCHEDULER  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data")

CASES = [
    dict(name="kohya", loras={"kohya": 0.8}, sampler="dpmpp-2m", steps=6, cfg=7.5, seed=3,
         prompt="a photo of an astronaut riding a horse on mars", negative="blurry"),
    dict(name="peft", loras={"peft": 1.0}, sampler="euler", steps=5, cfg=5.0, seed=8,
         prompt="a watercolor painting of a lighthouse at dusk", negative=None),
    dict(name="both", loras={"kohya": 0.5, "peft": -0.7}, sampler="ddim", steps=5, cfg=4.0,
         seed=21, prompt="an old tree", negative=None),
    dict(name="none", loras={}, sampler="dpmpp-2m", steps=6, cfg=7.5, seed=3,
         prompt="a photo of an astronaut riding a horse on mars", negative="blurry"),
]


def targets(pipe, attention_only, encoders=(("te", "text_encoder"),)):
    """(part, module path, module) of every layer the LoRA trains; encoders:
    (part, pipeline attribute) of each text encoder."""
    out = []
    for name, mod in pipe.unet.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if ".transformer_blocks." in name or leaf in ("proj_in", "proj_out"):
            attn = leaf in ("to_q", "to_k", "to_v") or name.endswith("to_out.0")
            ff = name.endswith("ff.net.0.proj") or name.endswith("ff.net.2")
            proj = leaf in ("proj_in", "proj_out")
            if attn or (not attention_only and (ff or proj)):
                out.append(("unet", name, mod))
    for part, attr in encoders:
        for name, mod in getattr(pipe, attr).named_modules():
            leaf = name.rsplit(".", 1)[-1]
            if leaf in ("q_proj", "k_proj", "v_proj", "out_proj") or (
                    not attention_only and leaf in ("fc1", "fc2")):
                # Published LoRAs name CLIP's layers as transformers 4 did,
                # below text_model. (transformers 5 maps them back on load).
                out.append((part, name if name.startswith("text_model.")
                            else "text_model." + name, mod))
    return out


def shapes(mod):
    if isinstance(mod, torch.nn.Conv2d):
        return mod.in_channels, mod.out_channels, (1, 1)
    return mod.in_features, mod.out_features, ()


KOHYA_TE = {"te": "lora_te_"}
PEFT_TE = {"te": "text_encoder."}


def make_kohya(pipe, gen, path, encoders=(("te", "text_encoder"),), prefixes=KOHYA_TE,
               unet_name=lambda name: name):
    """prefixes: kohya's prefix per text-encoder part; unet_name: the U-Net
    module path as the file spells it (SDXL's kohya files: SGM names)."""
    r, alpha, sd = 4, 2.0, {}
    for part, name, mod in targets(pipe, attention_only=False, encoders=encoders):
        k, n, tail = shapes(mod)
        key = ("lora_unet_" + unet_name(name) if part == "unet"
               else prefixes[part] + name).replace(".", "_")
        sd[key + ".lora_down.weight"] = (torch.randn(r, k, generator=gen) / k ** 0.5).reshape(
            r, k, *tail)
        sd[key + ".lora_up.weight"] = (0.3 * torch.randn(n, r, generator=gen)).reshape(
            n, r, *tail)
        sd[key + ".alpha"] = torch.tensor(alpha)
    save_file(sd, path)


def make_peft(pipe, gen, path, encoders=(("te", "text_encoder"),), prefixes=PEFT_TE):
    r, sd = 2, {}
    for part, name, mod in targets(pipe, attention_only=True, encoders=encoders):
        k, n, _ = shapes(mod)
        key = ("unet." if part == "unet" else prefixes[part]) + name
        sd[key + ".lora_A.weight"] = (torch.randn(r, k, generator=gen) / k ** 0.5).half()
        sd[key + ".lora_B.weight"] = (0.3 * torch.randn(n, r, generator=gen)).half()
    save_file(sd, path)


def run_case(pipe, c, scheduler_config=SD15_SCHEDULER):
    pipe.scheduler = SAMPLERS[c["sampler"]].from_config(scheduler_config)
    names = list(c["loras"])
    if names:
        pipe.enable_lora()
        pipe.set_adapters(names, adapter_weights=[c["loras"][n] for n in names])
    else:
        pipe.disable_lora()
    with torch.no_grad():
        latents = pipe(prompt=c["prompt"], negative_prompt=c["negative"],
                       num_inference_steps=c["steps"], guidance_scale=c["cfg"], height=64,
                       width=64, generator=[torch.Generator().manual_seed(c["seed"])],
                       output_type="latent").images
        image = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample
    npimg = pipe.image_processor.postprocess(image, output_type="np")
    rgb = (npimg * 255).round().astype("uint8")
    return latents, image, torch.from_numpy(rgb)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(DATA, "lora"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    diffusers.utils.logging.set_verbosity_error()
    os.makedirs(args.out, exist_ok=True)
    pipe = StableDiffusionPipeline.from_pretrained(
        os.path.join(DATA, "pipeline", "large"), torch_dtype=torch.float32,
        safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    gen = torch.Generator().manual_seed(1207)
    files = {n: os.path.join(args.out, n + ".safetensors") for n in ("kohya", "peft")}
    make_kohya(pipe, gen, files["kohya"])
    make_peft(pipe, gen, files["peft"])
    write_cases(pipe, files, args.out, CASES, SD15_SCHEDULER, "make_lora_cases.py")


def write_cases(pipe, files, out, cases, scheduler_config, oracle):
    """Loads the LoRA files (name -> path) with diffusers' load_lora_weights,
    runs every case and writes goldens.safetensors and cases.json."""
    for n, f in files.items():
        pipe.load_lora_weights(f, adapter_name=n)
    tensors = {}
    for c in cases:
        latents, image, rgb = run_case(pipe, c, scheduler_config)
        n = c["name"]
        tensors[f"{n}.latent"] = latents.contiguous()
        tensors[f"{n}.image"] = image.contiguous()
        tensors[f"{n}.rgb"] = rgb.contiguous()
        print(f"{n}: latent max|x| {latents.abs().max():.3f}")
    save_file(tensors, os.path.join(out, "goldens.safetensors"), metadata={"hsd_oracle": oracle})
    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump({"cases": cases}, f, indent=1)


if __name__ == "__main__":
    main()
