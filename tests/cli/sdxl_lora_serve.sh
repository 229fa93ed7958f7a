#!/usr/bin/env bash
# SDXL LoRAs chosen per request through hsd serve (issue 12 item 3 with
# issue 11 item 6), loopback only (ipc://):
# - hsd edge --lora NAME=FILE:SCALE with a pruned SDXL U-Net (the oracle's
#   small SDXL U-Net) against hsd serve --lora NAME=FILE with the SDXL
#   pipeline gives the pixels (and IDAT bytes) of hsd generate --model LARGE
#   --edge-model SMALL --split k --lora FILE:SCALE: the cloud's two text
#   encoders and U-Net and the edge's U-Net all take the LoRA. The LoRA is
#   the PEFT one of tests/data/lora_sdxl trimmed to the layers the small
#   U-Net has (lora_subset.py), as a user trims a LoRA for a pruned U-Net;
# - the kohya LoRA (SGM names, lora_te1_/lora_te2_) in full, with the SDXL
#   U-Net on both sides (the only U-Net it fits);
# - control: the same request without the LoRA gives other pixels;
# - a batch mixing LoRA and no-LoRA SDXL requests: each equals its own run;
# - the full PEFT LoRA does not fit the small U-Net (layers it lacks): the
#   edge refuses before any request, naming the layer.
#   sdxl_lora_serve.sh HSD PNGCMP TEST_DATA PYTHON
set -u
hsd=$1; pngcmp=$2; data=$3; py=$4
large=$data/pipeline_sdxl/large; small=$data/pipeline_sdxl/edge
kohya=$data/lora_sdxl/kohya.safetensors; peft=$data/lora_sdxl/peft.safetensors
# shellcheck source=harness.sh
. "$(dirname "$0")/harness.sh"

# The edge pipeline: SDXL's text encoders and VAE with the small U-Net.
edge=$tmp/edge
sdxl_edge_folder "$large" "$small" "$edge"
fit=$tmp/fit.safetensors
sdxl_fit_lora "$py" "$data" "$fit"

start_serve "$hsd" "$large" --threads 2 --lora "fit=$fit" --lora "kohya=$kohya" ||
  { echo "hsd serve did not start:"; cat "$tmp/serve.log"; exit 1; }
cloud=(--cloud "$ep" --key-file "$tmp/keys" --key-id edge-1 --no-fallback)
common=(-p "a lighthouse at dusk" --width 64 --height 64 --threads 2 -q)

# check NAME OUT EDGE_RC EDGE_OUT "generate args" [TOL]: OUT equals hsd
# generate's image (TOL: pngcmp --tol; empty: exact); NAME starting with
# DIFF: must differ instead.
check() {
  local name=$1 out=$2 erc=$3 eout=$4 g=$5 tol=${6:-} want=0 cmp rc
  [ "${name#DIFF}" != "$name" ] && want=1
  if [ "$erc" -ne 0 ] || [ ! -s "$out" ]; then bad "$name: hsd edge rc=$erc: $eout"; return; fi
  # shellcheck disable=SC2086
  if ! cmp=$("$hsd" generate "${common[@]}" $g -o "$out.g.png" 2>&1); then
    bad "$name: hsd generate: $cmp"; return; fi
  # shellcheck disable=SC2086
  cmp=$("$pngcmp" ${tol:+--tol $tol} "$out" "$out.g.png" 2>&1); rc=$?
  cmp=$(tr '\n' ' ' <<<"$cmp")
  if { [ $want -eq 0 ] && [ $rc -eq 0 ]; } || { [ $want -eq 1 ] && [ $rc -ne 0 ]; }; then
    ok "$name: $cmp"
  else bad "$name (pngcmp rc=$rc): $cmp"; fi
}
edge_run() {  # edge_run OUT MODEL "edge args": rc in $erc, output in $eout
  # shellcheck disable=SC2086
  eout=$("$hsd" edge "${cloud[@]}" --model "$2" "${common[@]}" $3 -o "$1" 2>&1); erc=$?
}
hybrid="--model $large --edge-model $small"

a="--split 3 --steps 6 --sampler euler --cfg 5 --seed 4"
edge_run "$tmp/a.png" "$edge" "$a --lora fit=$fit:0.9"
check "trimmed PEFT 0.9, small edge U-Net, euler, k=3 of 6" "$tmp/a.png" $erc "$eout" \
      "$hybrid $a --lora $fit:0.9"
b="--split 2 --steps 5 --sampler dpmpp-2m --cfg 7 --seed 9 -n blurry"
edge_run "$tmp/b.png" "$edge" "$b --lora fit=$fit:-0.7"
check "trimmed PEFT -0.7, negative prompt, dpmpp-2m, k=2 of 5" "$tmp/b.png" $erc "$eout" \
      "$hybrid $b --lora $fit:-0.7"
c="--split 3 --steps 6 --sampler ddim --cfg 4 --seed 21"
edge_run "$tmp/c.png" "$large" "$c --lora kohya=$kohya:0.8"
check "kohya 0.8 (SGM names, te1+te2), SDXL U-Net on the edge, ddim, k=3 of 6" "$tmp/c.png" \
      $erc "$eout" "--model $large --edge-model $large $c --lora $kohya:0.8"
edge_run "$tmp/d.png" "$edge" "$a"
check "DIFF control: no LoRA on the edge request" "$tmp/d.png" $erc "$eout" \
      "$hybrid $a --lora $fit:0.9"

# Three edges at once, LoRA and no LoRA: the service batches their U-Net
# calls (one latent size, one conditioning layout); each equals its
# in-process run within 1/255 per 8-bit channel, the bound of
# tests/cli/sdxl_serve.sh's concurrent case (OpenBLAS picks its GEMM
# kernels by matrix size, so a row's fp32 reduction order depends on how
# many rows share the call); a LoRA reaching the wrong row would be off by
# far more (the control above differs in most pixels).
pids=()
scale=([11]=0.8 [12]=0 [13]=-0.6)  # 0: no LoRA
for s in 11 12 13; do
  lora=; [ "${scale[s]}" != 0 ] && lora="--lora fit=$fit:${scale[s]}"
  ( edge_run "$tmp/m$s.png" "$edge" "--split 4 --steps 6 --sampler euler --cfg 5 --seed $s $lora"
    echo "$erc" > "$tmp/m$s.rc"; printf '%s' "$eout" > "$tmp/m$s.out" ) &
  pids+=($!)
done
wait "${pids[@]}"
for s in 11 12 13; do
  lora=; [ "${scale[s]}" != 0 ] && lora="--lora $fit:${scale[s]}"
  check "batched seed $s, LoRA scale ${scale[s]}, k=4 of 6" "$tmp/m$s.png" \
        "$(cat "$tmp/m$s.rc")" "$(cat "$tmp/m$s.out")" \
        "$hybrid --split 4 --steps 6 --sampler euler --cfg 5 --seed $s $lora" 1
done

# The full PEFT LoRA has layers the small U-Net lacks: refused at the edge
# before any request (no image, the layer named).
rm -f "$tmp/x.png"
edge_run "$tmp/x.png" "$edge" "--split 2 --steps 4 --lora fit=$peft:1"
if [ "$erc" -ne 0 ] && grep -q "does not fit" <<<"$eout" && grep -q "transformer_blocks" <<<"$eout" \
   && [ ! -e "$tmp/x.png" ]; then
  ok "a LoRA that does not fit the small SDXL U-Net is refused: $eout"
else bad "small SDXL U-Net without the LoRA's layers (rc=$erc): $eout"; fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
