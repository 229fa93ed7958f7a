#!/bin/sh
# Regenerate every committed golden: U-Net (tests/data/unet/, diffusers),
# CLIP text encoder (tests/data/text/, transformers) and VAEs
# (tests/data/vae/, diffusers), samplers and torch RNG (tests/data/sampling/).
#
#   tests/oracle/regen.sh                 # uses .venv/bin/python of the repo
#   PYTHON=/path/to/python tests/oracle/regen.sh
#
# The Python environment is tests/oracle/requirements.txt (exact pins: other
# torch/diffusers versions may change the last bits of the goldens). Output
# is deterministic: running this twice gives byte-identical files.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
PYTHON=${PYTHON:-$root/.venv/bin/python}
"$PYTHON" "$here/make_unet_cases.py" --out "$root/tests/data/unet" "$@"
# diffusers' parameter counts of the SDXL-family U-Net presets.
"$PYTHON" "$here/make_unet_preset_params.py" --out "$root/tests/data/presets/unet_params.json"
# CLIP text encoder goldens (tests/data/text/), from transformers.
"$PYTHON" "$here/make_text_cases.py" --out "$root/tests/data/text" "$@"
# VAE goldens (tests/data/vae/: AutoencoderKL and AutoencoderTiny), from diffusers.
"$PYTHON" "$here/make_vae_cases.py" --out "$root/tests/data/vae" "$@"
# Sampler timesteps/trajectories and torch.randn goldens (tests/data/sampling/).
"$PYTHON" "$here/make_sampler_cases.py" --out "$root/tests/data/sampling"
# CLIP tokenizer goldens and the tiny tokenizer (tests/data/tokenizer/), from transformers.
"$PYTHON" "$here/make_tokenizer_cases.py" --out "$root/tests/data/tokenizer"
# Whole pipelines and Hybrid SD splits (tests/data/pipeline/), from diffusers.
"$PYTHON" "$here/make_pipeline_cases.py" --out "$root/tests/data/pipeline"
# The bf16 CPU mode's golden: that pipeline's large U-Net in fp32 and under
# CPU bf16 autocast (tests/data/unet_bf16/; after the pipeline it reads).
"$PYTHON" "$here/make_unet_bf16_case.py" --out "$root/tests/data/unet_bf16"
# Tiny SDXL pipelines and Hybrid SDXL splits (tests/data/pipeline_sdxl/), from diffusers.
(cd "$here" && "$PYTHON" make_sdxl_pipeline_cases.py --out "$root/tests/data/pipeline_sdxl")
# Random LoRAs (kohya and diffusers/PEFT files) on that pipeline, with
# diffusers' load_lora_weights images (tests/data/lora/).
"$PYTHON" "$here/make_lora_cases.py" --out "$root/tests/data/lora"
# The same on the tiny SDXL pipeline (kohya SGM names, lora_te1/te2,
# text_encoder_2), with StableDiffusionXLPipeline (tests/data/lora_sdxl/).
(cd "$here" && "$PYTHON" make_lora_sdxl_cases.py --out "$root/tests/data/lora_sdxl")
# LCM-shaped U-Nets with LCMScheduler, the 4 + 4 split and LCM-LoRA
# (tests/data/lcm/; after the LoRAs, which LCM-LoRA uses).
"$PYTHON" "$here/make_lcm_cases.py" --out "$root/tests/data/lcm"
# Scheduler configs as diffusers saves them, with diffusers' timesteps
# (tests/data/sampling/saved_configs/).
"$PYTHON" "$here/make_scheduler_configs.py" --out "$root/tests/data/sampling/saved_configs"
# A1111 long prompts and emphasis (tests/data/prompt/), reference written
# from A1111's documented rules, on the tiny pipeline above.
"$PYTHON" "$here/make_prompt_cases.py" --out "$root/tests/data/prompt"
