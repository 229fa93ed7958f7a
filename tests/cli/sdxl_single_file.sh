#!/usr/bin/env bash
# SDXL single-file checkpoints (conditioner.embedders.0/1 + model.diffusion_model
# + first_stage_model) against the diffusers folder they were written from
# (tests/oracle/make_sdxl_single_file.py writes both at test time, ~50 MB,
# and checks the file with diffusers' own converters):
# - hsd generate --model FILE == --model FOLDER (pixels and IDAT bytes), and
#   == diffusers' StableDiffusionXLPipeline on the folder (every 8-bit
#   channel within 1/255, test_pipeline's bound); the same with a kohya
#   SDXL LoRA (--lora) against diffusers' load_lora_weights;
# - hybrid: FILE + a U-Net-only --edge-model file == the folders;
# - hsd inspect: family, both text encoders, the variant (SDXL-base,
#   SSD-1B-like, KOALA-like, custom) and the parameter count, from the
#   config (folders) and from the shapes (files), equal to diffusers';
# - a file without the bigG encoder fails naming the prefix.
#   sdxl_single_file.sh HSD PNGCMP PYTHON ORACLE_DIR
set -u
hsd=$1; pngcmp=$2; py=$3; oracle=$4
# shellcheck source=harness.sh
. "$(dirname "$0")/harness.sh"

oracle_write "$py" "$oracle/make_sdxl_single_file.py"

# make_sdxl_single_file.py REF: the request diffusers ran for ref.png.
common=(-p "a lighthouse at dusk" -n "blurry" --width 64 --height 64 --seed 11 --threads 2 -q
        --steps 4 --sampler euler --cfg 5)
gen() { "$hsd" generate "$@" "${common[@]}" 2>&1; }

if out=$(gen --model "$m/model.safetensors" -o "$tmp/a.png") &&
   out=$(gen --model "$m/folder" -o "$tmp/b.png") && cmp=$("$pngcmp" "$tmp/a.png" "$tmp/b.png"); then
  ok "SDXL file == folder (euler, cfg 5): $(tr '\n' ' ' <<<"$cmp")"
else bad "SDXL file vs folder: $out ${cmp:-}"; fi
# near WHAT GOT.png REF.png: every 8-bit channel within 1/255 (test_pipeline's
# bound: a value on a rounding boundary may land on either side).
near() {
  local worst
  worst=$("$py" - "$2" "$3" <<'PY' 2>&1
import sys
import numpy as np
from PIL import Image
a, r = (np.asarray(Image.open(p).convert("RGB")).astype(int) for p in sys.argv[1:3])
print(int(np.abs(a - r).max()) if a.shape == r.shape else 999)
PY
)
  if [ -n "$worst" ] && [ "$worst" -le 1 ] 2>/dev/null; then ok "$1: within $worst/255"
  else bad "$1: '$worst'"; fi
}
near "SDXL file == diffusers StableDiffusionXLPipeline" "$tmp/a.png" "$m/ref.png"

# A kohya SDXL LoRA (SGM U-Net names, lora_te1_/lora_te2_) on the file ==
# on the folder == diffusers load_lora_weights at the same scale; != no LoRA.
if out=$(gen --model "$m/model.safetensors" --lora "$m/lora.safetensors:0.7" -o "$tmp/la.png") &&
   out=$(gen --model "$m/folder" --lora "$m/lora.safetensors:0.7" -o "$tmp/lb.png") &&
   cmp=$("$pngcmp" "$tmp/la.png" "$tmp/lb.png"); then
  ok "SDXL file + LoRA == folder + LoRA: $(tr '\n' ' ' <<<"$cmp")"
else bad "SDXL LoRA file vs folder: $out ${cmp:-}"; fi
near "SDXL file + kohya LoRA 0.7 == diffusers load_lora_weights" "$tmp/la.png" "$m/ref_lora.png"
if "$pngcmp" "$tmp/a.png" "$tmp/la.png" >/dev/null 2>&1; then bad "control: the LoRA changed nothing"
else ok "control: the LoRA gives other pixels"; fi

if out=$(gen --model "$m/model.safetensors" --edge-model "$m/edge_unet.safetensors" --split 2 -o "$tmp/c.png") &&
   out=$(gen --model "$m/folder" --edge-model "$m/edge" --split 2 -o "$tmp/d.png") &&
   cmp=$("$pngcmp" "$tmp/c.png" "$tmp/d.png"); then
  ok "hybrid: SDXL file + U-Net-only edge file == folders, k=2: $(tr '\n' ' ' <<<"$cmp")"
else bad "SDXL hybrid file vs folders: $out ${cmp:-}"; fi
# The checks above must be able to fail: the edge U-Net changes the pixels.
if "$pngcmp" "$tmp/a.png" "$tmp/c.png" >/dev/null 2>&1; then bad "control: the split changed nothing"
else ok "control: the edge U-Net from step 2 gives other pixels"; fi

# inspect: parts, assumptions, variant and parameters from the shapes.
params() { "$py" -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$m/params.json" "$1"; }
out=$("$hsd" inspect "$m/model.safetensors" 2>&1)
if grep -q "family:     SDXL" <<<"$out" && grep -q "text 2:     CLIPTextModelWithProjection" <<<"$out" &&
   grep -q "scaling factor 0.13025" <<<"$out" && grep -q "variant:    SDXL-base$" <<<"$out" &&
   grep -q "parameters: $(params large) " <<<"$out"; then
  ok "inspect SDXL file: family, both encoders, SDXL-base, $(params large) parameters (diffusers')"
else bad "inspect SDXL file: $out"; fi
out=$("$hsd" inspect "$m/folder" 2>&1)
if grep -q "variant:    SDXL-base$" <<<"$out" && grep -q "parameters: $(params large) " <<<"$out"; then
  ok "inspect SDXL folder: SDXL-base, $(params large) parameters"
else bad "inspect SDXL folder: $out"; fi
# Each variant from its config (folder) and from its weight shapes (file).
for v in "edge:SSD-1B-like SDXL" "koala:KOALA-like SDXL" "custom:custom SDXL"; do
  name=${v%%:*} want=${v#*:}
  for e in "$m/${name}_unet.safetensors" "$m/$name"; do
    out=$("$hsd" inspect "$e" 2>&1)
    if grep -q "variant:    $want$" <<<"$out" && grep -q "parameters: $(params "$name") " <<<"$out"; then
      ok "inspect $(basename "$e"): $want, $(params "$name") parameters (diffusers')"
    else bad "inspect $e: $out"; fi
  done
done

rm -f "$tmp/x.png"
out=$("$hsd" generate --model "$m/no_bigg.safetensors" -p a --width 64 --height 64 --steps 2 -o "$tmp/x.png" 2>&1); rc=$?
if [ $rc -eq 1 ] && grep -qF "no tensor under conditioner.embedders.1.model." <<<"$out" && [ ! -e "$tmp/x.png" ]; then
  ok "SDXL file without bigG: $out"
else bad "SDXL file without bigG (rc=$rc): $out"; fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
