#!/usr/bin/env bash
# SD 1.x single-file checkpoints (A1111/ComfyUI .safetensors) against the
# diffusers folders they were written from (tests/oracle/make_single_file.py
# writes both at test time: ~190 MB, too big to commit, and checks the file
# with diffusers' own converters and from_single_file):
# - hsd generate --model FILE == --model FOLDER (pixels and IDAT bytes), also
#   with a single-file --edge-model (hybrid split) and with --vae DIR;
# - hsd edge --model EDGE_FILE via hsd serve --model FILE == hsd generate
#   --model FOLDER --edge-model EDGE_FOLDER --split k;
# - hsd inspect names the family, the parts and what was assumed;
# - clear errors: a part missing (the prefix named, SD 2.x and SDXL too),
#   a pickled .ckpt, a vocabulary that cannot be found.
#   single_file.sh HSD PNGCMP PYTHON ORACLE_DIR
set -u
hsd=$1; pngcmp=$2; py=$3; oracle=$4
# shellcheck source=harness.sh
. "$(dirname "$0")/harness.sh"

oracle_write "$py" "$oracle/make_single_file.py"

common=(-p "a lighthouse at dusk" -n "blurry" --width 64 --height 64 --seed 11 --threads 2 -q)

# same NAME "args for A" "args for B": the two generate runs give equal PNGs.
same() {
  local name=$1 a=$2 b=$3 out rc
  rm -f "$tmp/a.png" "$tmp/b.png"
  # shellcheck disable=SC2086
  if ! out=$("$hsd" generate $a "${common[@]}" -o "$tmp/a.png" 2>&1); then bad "$name: $out"; return; fi
  # shellcheck disable=SC2086
  if ! out=$("$hsd" generate $b "${common[@]}" -o "$tmp/b.png" 2>&1); then bad "$name: $out"; return; fi
  out=$("$pngcmp" "$tmp/a.png" "$tmp/b.png"); rc=$?
  if [ $rc -eq 0 ]; then ok "$name: $(tr '\n' ' ' <<<"$out")"; else bad "$name: $out"; fi
}
same "file == folder (dpmpp-2m, cfg)" "--model $m/model.safetensors --steps 4" \
     "--model $m/folder --steps 4"
same "file == folder (euler-a, cfg off)" "--model $m/model.safetensors --steps 3 --sampler euler-a --cfg 1" \
     "--model $m/folder --steps 3 --sampler euler-a --cfg 1"
same "hybrid: file + single-file edge U-Net == folders" \
     "--model $m/model.safetensors --edge-model $m/edge_unet.safetensors --split 2 --steps 4" \
     "--model $m/folder --edge-model $m/edge --split 2 --steps 4"
same "--vae DIR overrides the file's VAE" "--model $m/model.safetensors --vae $m/folder --steps 3" \
     "--model $m/folder --steps 3"
# Each part alone (run-text, run-vae): the same output file, byte for byte.
"$py" - "$tmp" <<'PY'
import sys, torch
from safetensors.torch import save_file
g = torch.Generator().manual_seed(5)
save_file({"input_ids": torch.randint(0, 49408, (2, 77), generator=g)}, sys.argv[1] + "/ids.safetensors")
save_file({"latent": torch.randn(1, 4, 8, 8, generator=g)}, sys.argv[1] + "/lat.safetensors")
PY
for part in text vae; do
  in=$tmp/ids.safetensors; [ $part = vae ] && in=$tmp/lat.safetensors
  rm -f "$tmp/o1" "$tmp/o2"
  "$hsd" run-$part --model "$m/model.safetensors" --in "$in" --out "$tmp/o1" --threads 2 2>&1
  "$hsd" run-$part --model "$m/folder" --in "$in" --out "$tmp/o2" --threads 2 2>&1
  if [ -s "$tmp/o1" ] && cmp -s "$tmp/o1" "$tmp/o2"; then ok "run-$part FILE == FOLDER (output bytes)"
  else bad "run-$part FILE != FOLDER"; fi
done
# SD 2.x's text encoder alone: OpenCLIP renamed, q/k/v split, last block left out.
rm -f "$tmp/o1" "$tmp/o2"
"$hsd" run-text --model "$m/sd2.safetensors" --in "$tmp/ids.safetensors" --out "$tmp/o1" --threads 2 2>&1
"$hsd" run-text --model "$m/sd2_folder" --in "$tmp/ids.safetensors" --out "$tmp/o2" --threads 2 2>&1
if [ -s "$tmp/o1" ] && cmp -s "$tmp/o1" "$tmp/o2"; then ok "run-text SD2_FILE == SD2_FOLDER (output bytes)"
else bad "run-text SD2_FILE != SD2_FOLDER"; fi

# The checks above must be able to fail: another model gives other pixels.
"$hsd" generate --model "$m/folder" --edge-model "$m/edge" --split 0 --steps 3 "${common[@]}" -o "$tmp/a.png" 2>/dev/null
"$hsd" generate --model "$m/model.safetensors" --steps 3 "${common[@]}" -o "$tmp/b.png" 2>/dev/null
if "$pngcmp" "$tmp/a.png" "$tmp/b.png" >/dev/null 2>&1; then bad "control: other U-Net, same pixels"
else ok "control: the edge U-Net alone gives other pixels"; fi

# hsd edge (an SD 1.x single file as its pipeline) against hsd serve --model FILE.
if start_serve "$hsd" "$m/model.safetensors" --threads 2; then
  rm -f "$tmp/a.png" "$tmp/b.png"
  out=$("$hsd" edge --cloud "$ep" --model "$m/edge.safetensors" --key-file "$tmp/keys" \
        --key-id edge-1 --no-fallback --split 2 --steps 4 "${common[@]}" -o "$tmp/a.png" 2>&1)
  "$hsd" generate --model "$m/folder" --edge-model "$m/edge" --split 2 --steps 4 "${common[@]}" \
    -o "$tmp/b.png" >/dev/null 2>&1
  if cmp=$("$pngcmp" "$tmp/a.png" "$tmp/b.png" 2>&1); then
    ok "edge (file) via serve (file), k=2 == generate folders --split 2: $(tr '\n' ' ' <<<"$cmp")"
  else
    bad "edge via serve: $out $cmp"
  fi
else
  bad "hsd serve --model FILE did not start: $(cat "$tmp/serve.log")"
fi

# inspect
out=$("$hsd" inspect "$m/model.safetensors" 2>&1)
if grep -q "family:     SD 1.x" <<<"$out" && grep -q "assumed" <<<"$out" \
   && grep -q "VAE 180 (first_stage_model.)" <<<"$out"; then ok "inspect FILE: family, parts, assumptions"
else bad "inspect FILE: $out"; fi
out=$("$hsd" inspect "$m/sdxl.safetensors" 2>&1)
if grep -q "family:     SDXL" <<<"$out"; then ok "inspect SDXL file names the family"; else bad "inspect SDXL: $out"; fi

# SD 2.x (OpenCLIP text tower, fused in_proj, penultimate layer, v-prediction
# assumed, SD 2.1 tokenizer): the file == its folder, and the file == diffusers
# (StableDiffusionPipeline.from_pretrained of the folder, DPM-Solver++ 2M,
# every 8-bit channel within 1/255, test_pipeline's bound).
same "SD 2.x: file == folder (dpmpp-2m, cfg)" \
     "--model $m/sd2.safetensors --steps 4" "--model $m/sd2_folder --steps 4"
sd2=(-p "a lighthouse at dusk!" -n "blurry" --width 64 --height 64 --seed 11 --threads 2 -q --steps 4)
if "$hsd" generate --model "$m/sd2.safetensors" "${sd2[@]}" -o "$tmp/s.png" 2>"$tmp/err"; then
  worst=$(OMP_NUM_THREADS=2 "$py" - "$tmp/s.png" "$m/sd2_folder" <<'PY' 2>"$tmp/py.err"
import sys
import numpy as np
import torch
from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline
from PIL import Image
pipe = StableDiffusionPipeline.from_pretrained(sys.argv[2], torch_dtype=torch.float32,
                                               safety_checker=None)
pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
pipe.set_progress_bar_config(disable=True)
img = pipe("a lighthouse at dusk!", negative_prompt="blurry", width=64, height=64,
           num_inference_steps=4, guidance_scale=7.5,
           generator=torch.Generator().manual_seed(11), output_type="np").images[0]
ref = (img * 255).round().astype(int)
got = np.asarray(Image.open(sys.argv[1]).convert("RGB")).astype(int)
print(int(np.abs(got - ref).max()))
PY
)
  if [ -n "$worst" ] && [ "$worst" -le 1 ]; then ok "SD 2.x file == diffusers (v-prediction): within $worst/255"
  else bad "SD 2.x file vs diffusers: '$worst' $(tail -3 "$tmp/py.err")"; fi
else
  bad "SD 2.x generate: $(cat "$tmp/err")"
fi
"$hsd" generate --model "$m/sd2.safetensors" --prediction epsilon "${sd2[@]}" -o "$tmp/e.png" 2>/dev/null
if [ -s "$tmp/e.png" ] && ! "$pngcmp" "$tmp/s.png" "$tmp/e.png" >/dev/null 2>&1; then
  ok "SD 2.x --prediction epsilon: other pixels than the assumed v"
else bad "SD 2.x --prediction epsilon changed nothing"; fi
out=$("$hsd" inspect "$m/sd2.safetensors" 2>&1)
if grep -q "family:     SD 2.x" <<<"$out" && grep -q "v_prediction prediction (assumed" <<<"$out" &&
   grep -q "23 layers" <<<"$out"; then ok "inspect SD 2.x file: family, 23 of 24 blocks, v assumed"
else bad "inspect SD 2.x: $out"; fi
out=$("$hsd" inspect --prediction epsilon "$m/sd2.safetensors" 2>&1)
if grep -q "epsilon prediction (as --prediction says)" <<<"$out"; then ok "inspect --prediction epsilon says so"
else bad "inspect --prediction: $out"; fi
# hsd edge with the SD 2.x file through hsd serve --model FILE: the same
# U-Net on both sides, so equal to generate (the v-prediction sampler state
# and the 128-wide embeddings cross the wire).
if [ -n "$srv_pid" ]; then kill "$srv_pid" 2>/dev/null; wait "$srv_pid" 2>/dev/null; srv_pid=; fi
if start_serve "$hsd" "$m/sd2.safetensors" --threads 2; then
  out=$("$hsd" edge --cloud "$ep" --model "$m/sd2.safetensors" --key-file "$tmp/keys" \
        --key-id edge-1 --no-fallback --split 2 "${sd2[@]}" -o "$tmp/se.png" 2>&1)
  if cmp=$("$pngcmp" "$tmp/s.png" "$tmp/se.png" 2>&1); then
    ok "SD 2.x: edge (file) via serve (file), k=2 == generate: $(tr '\n' ' ' <<<"$cmp")"
  else bad "SD 2.x edge via serve: $out $cmp"; fi
else
  bad "hsd serve --model SD2_FILE did not start: $(cat "$tmp/serve.log")"
fi

# errors: exit 1, a message naming the cause, no file.
expect_fail() {  # expect_fail WHAT "message part" generate-args...
  local what=$1 want=$2 out rc; shift 2
  rm -f "$tmp/x.png"
  out=$("$hsd" generate "$@" -p "a" --width 64 --height 64 --steps 2 -o "$tmp/x.png" 2>&1); rc=$?
  if [ $rc -eq 1 ] && grep -qF -- "$want" <<<"$out" && [ ! -e "$tmp/x.png" ]; then ok "$what: $out"
  else bad "$what (rc=$rc): $out"; fi
}
expect_fail "U-Net-only file as --model" "no tensor under cond_stage_model.transformer." \
  --model "$m/edge_unet.safetensors"
expect_fail "file without VAE" "no tensor under first_stage_model." --model "$m/no_vae.safetensors"
expect_fail "SD 2.x file without VAE" "not a complete SD 2.x checkpoint: no tensor under first_stage_model." \
  --model "$m/sd2_partial.safetensors"
expect_fail "incomplete SDXL file" "not a complete SDXL checkpoint: no tensor under conditioner.embedders.0.transformer." \
  --model "$m/sdxl.safetensors"
expect_fail "pickled .ckpt" "pickled .ckpt files are not read" --model "$m/model.ckpt"
HSD_CLIP_BPE_GZ=$tmp/nothing.gz expect_fail "vocabulary not found" "HSD_CLIP_BPE_GZ" \
  --model "$m/model.safetensors"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
