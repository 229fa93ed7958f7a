#!/usr/bin/env bash
# Hybrid SDXL across the network (issue 11 item 6), loopback only (ipc://):
# - `hsd edge` with a small SDXL-family U-Net against `hsd serve` with the
#   SDXL pipeline gives the pixels (and IDAT bytes) of `hsd generate
#   --model LARGE --edge-model EDGE --split k`: samplers, CFG on/off, a
#   negative prompt, --original-size/--crop, TAESDXL, a k range, and
#   concurrent requests batched by the service;
# - the time ids travel: the same request with another --crop on the edge
#   gives other pixels (so equality above is not vacuous);
# - bad pairs are refused before compute with the field named: an SD 1.x
#   edge against the SDXL service, an SDXL edge against an SD 1.x service.
# The edge pipeline is the oracle's SDXL folder with the small SDXL U-Net
# as unet/ (as a KOALA folder ships with SDXL's text encoders and VAE).
#   sdxl_serve.sh HSD PNGCMP TEST_DATA
set -u
hsd=$1; pngcmp=$2; data=$3
large=$data/pipeline_sdxl/large; small=$data/pipeline_sdxl/edge
# shellcheck source=harness.sh
. "$(dirname "$0")/harness.sh"

edge=$tmp/edge
sdxl_edge_folder "$large" "$small" "$edge"

# --warmup: SDXL's text encoders and U-Net (pooled embeddings, time ids) warm too.
start_serve "$hsd" "$large" --threads 2 --warmup || { echo "hsd serve did not start:"; cat "$tmp/serve.log"; exit 1; }
cloud=(--cloud "$ep" --model "$edge" --key-file "$tmp/keys" --key-id edge-1)
common=(-p "a lighthouse at dusk" --width 64 --height 64 --threads 2 -q)

# same_as_generate NAME "edge split args" GENERATE_K [args...]; GENERATE_K
# "auto": the k the edge's PNG reports. Runs the edge, then generate.
tol=
run_edge() {  # run_edge OUT "split args" [args...]: the edge's output, rc in $edge_rc
  local out=$1 split=$2; shift 2
  # shellcheck disable=SC2086
  edge_out=$("$hsd" edge "${cloud[@]}" "${common[@]}" $split "$@" -o "$out" 2>&1); edge_rc=$?
}
compare_with_generate() {  # NAME OUT K [args...]; $tol: pngcmp --tol (empty: exact)
  local name=$1 out=$2 k=$3; shift 3
  if [ "$edge_rc" -ne 0 ] || [ ! -s "$out" ]; then bad "$name: hsd edge rc=$edge_rc: $edge_out"; return; fi
  if grep -q '"fallback"' "$out"; then bad "$name: fell back locally: $edge_out"; return; fi
  local used
  used=$(grep -ao '"cloud_k":[0-9]*' "$out" | head -1 | cut -d: -f2)
  [ "$k" = auto ] && k=$used
  if [ "$used" != "$k" ]; then bad "$name: cloud_k '$used', expected $k"; return; fi
  if ! "$hsd" generate --model "$large" --edge-model "$small" --split "$k" "${common[@]}" "$@" \
       -o "$out.g.png" >/dev/null 2>&1; then bad "$name: hsd generate failed"; return; fi
  local cmp rc
  # shellcheck disable=SC2086
  cmp=$("$pngcmp" ${tol:+--tol $tol} "$out" "$out.g.png"); rc=$?
  cmp=$(tr '\n' ' ' <<<"$cmp")
  if [ $rc -eq 0 ]; then ok "$name: edge (k=$k) == generate --split $k: $cmp"
  else bad "$name: edge differs from generate --split $k: $cmp"; fi
}
same_as_generate() {
  local name=$1 split=$2 k=$3; shift 3
  run_edge "$tmp/e.png" "$split" "$@"
  compare_with_generate "$name" "$tmp/e.png" "$k" "$@"
}

micro=(--original-size 1024x768 --crop 16,32)
same_as_generate "euler cfg 5, k=3 of 8, original size + crop" "--split 3" 3 \
  --steps 8 --sampler euler --cfg 5 --seed 1234 "${micro[@]}"
same_as_generate "dpmpp-2m, negative prompt, TAESDXL, k=4 of 8" "--split 4" 4 \
  --steps 8 --sampler dpmpp-2m --cfg 7 --seed 7 -n "blurry, low quality" --vae tiny
same_as_generate "ddim, cfg off, k=2 of 6" "--split 2" 2 --steps 6 --sampler ddim --cfg 1 --seed 3
same_as_generate "euler-a, k range 1:4" "--split-range 1:4" auto --steps 6 --sampler euler-a --cfg 4 --seed 42
same_as_generate "k = 0 (text only in the cloud)" "--split 0" 0 --steps 4 --sampler euler --cfg 5 --seed 5

# Three edges at once: the service batches their U-Net calls (one latent
# size, one conditioning layout); each equals its in-process run within
# 1/255 per 8-bit channel (test_pipeline's bound): not bitwise, because
# OpenBLAS picks its GEMM kernels by matrix size, so a row's fp32
# reduction order depends on how many rows share the call (as
# test_service's batch invariance check says); a mix-up between batched
# requests would be off by far more.
pids=()
for s in 11 12 13; do
  ( run_edge "$tmp/c$s.png" "--split 4" --steps 6 --sampler euler --cfg 5 --seed "$s"
    echo "$edge_rc" > "$tmp/c$s.rc"; printf '%s' "$edge_out" > "$tmp/c$s.out" ) &
  pids+=($!)
done
wait "${pids[@]}"
tol=1
for s in 11 12 13; do
  edge_rc=$(cat "$tmp/c$s.rc"); edge_out=$(cat "$tmp/c$s.out")
  compare_with_generate "concurrent seed $s, k=4 of 6" "$tmp/c$s.png" 4 --steps 6 --sampler euler --cfg 5 --seed "$s"
done
tol=

# The time ids travel: the edge asking for another crop gets other pixels.
run_edge "$tmp/crop.png" "--split 3" --steps 8 --sampler euler --cfg 5 --seed 1234 --original-size 1024x768 --crop 0,0
if [ "$edge_rc" -eq 0 ]; then
  "$hsd" generate --model "$large" --edge-model "$small" --split 3 "${common[@]}" --steps 8 \
    --sampler euler --cfg 5 --seed 1234 "${micro[@]}" -o "$tmp/ref.png" >/dev/null 2>&1
  if [ -s "$tmp/ref.png" ] && ! "$pngcmp" "$tmp/crop.png" "$tmp/ref.png" >/dev/null 2>&1; then
    ok "crop 0,0 vs 16,32: other pixels (the time ids reach the U-Nets)"
  else
    bad "crop 0,0 gives the pixels of crop 16,32: time ids ignored"
  fi
else
  bad "crop control: rc=$edge_rc: $edge_out"
fi

# Bad pairs: refused by the service before any compute, the field named.
refused() {  # refused NAME WANT EDGE_MODEL
  local name=$1 want=$2 model=$3 out rc
  rm -f "$tmp/x.png"
  out=$("$hsd" edge --cloud "$ep" --model "$model" --key-file "$tmp/keys" --key-id edge-1 \
        "${common[@]}" --steps 4 --split 2 --no-fallback -o "$tmp/x.png" 2>&1); rc=$?
  if [ $rc -eq 1 ] && grep -q BAD_REQUEST <<<"$out" && grep -qF -- "$want" <<<"$out" \
     && [ ! -e "$tmp/x.png" ]; then
    ok "$name: $out"
  else
    bad "$name (rc=$rc): $out"
  fi
}
refused "SD 1.x edge, SDXL service" "edge_ctx_c 32" "$data/pipeline/edge"
kill "$srv_pid"; wait "$srv_pid" 2>/dev/null; srv_pid=
start_serve "$hsd" "$data/pipeline/large" --threads 2 || { echo "SD 1.x serve did not start"; exit 1; }
refused "SDXL edge, SD 1.x service" "edge_ctx_c 40" "$edge"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
