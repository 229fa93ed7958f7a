#!/usr/bin/env bash
# SDXL through `hsd edge --http` (the AUTOMATIC1111 API), on loopback only
# (hsd serve on ipc:// in a temp dir, the daemon on 127.0.0.1, a free port):
# - a txt2img request to a daemon with a small SDXL U-Net against hsd serve
#   with the SDXL pipeline gives the pixels (and IDAT bytes) of hsd generate
#   --model LARGE --edge-model SMALL --split k with the same seed, with a
#   prompt's <lora:fit:0.9> (the LoRA registered on both sides; the PEFT
#   LoRA of tests/data/lora_sdxl trimmed to the small U-Net's layers) and
#   without it (control: other pixels than with it);
# - --prompt-style a1111 with an SDXL model is refused at start.
# The default size (1024 for SDXL) is test_a1111_request's (a 1024² image
# takes too long for CI on the CPU).
#   sdxl_edge_http.sh HSD PNGCMP TEST_DATA PYTHON
set -u
hsd=$1; pngcmp=$2; data=$3; py=$4
large=$data/pipeline_sdxl/large; small=$data/pipeline_sdxl/edge
# shellcheck source=harness.sh
. "$(dirname "$0")/harness.sh"
edge_pid=
trap 'if [ -n "$edge_pid" ]; then kill "$edge_pid" 2>/dev/null; wait "$edge_pid" 2>/dev/null; fi; cleanup' EXIT
export OMP_WAIT_POLICY=PASSIVE

edge=$tmp/edge
sdxl_edge_folder "$large" "$small" "$edge"
fit=$tmp/fit.safetensors
sdxl_fit_lora "$py" "$data" "$fit"

out=$(timeout 20 "$hsd" edge --http 127.0.0.1:0 --cloud "ipc://$tmp/none.ipc" --model "$edge" \
      --split 2 --prompt-style a1111 2>&1); rc=$?
if [ $rc -eq 1 ] && grep -qF -- "--prompt-style a1111 is not supported for SDXL" <<<"$out"; then
  ok "edge --http, SDXL, --prompt-style a1111 refused: $out"
else bad "edge --http, SDXL, --prompt-style a1111 (rc=$rc): $out"; fi

# The same thread count everywhere: it decides how sums split, and the
# images compared must come from the same count.
start_serve "$hsd" "$large" --threads 2 --lora "fit=$fit" ||
  { echo "hsd serve did not start:"; cat "$tmp/serve.log"; exit 1; }
start_edge_http "$hsd" --model "$edge" --threads 2 --cloud "$ep" --key-file "$tmp/keys" \
  --key-id edge-1 --split 3 --no-fallback --lora "fit=$fit"

post() {  # post PROMPT OUT.png: "STATUS DETAIL" (a1111_post.py)
  local fmt='{"prompt": "%s", "negative_prompt": "blurry", "steps": 6, "sampler_name": "Euler",
             "cfg_scale": 5, "seed": 4, "width": 64, "height": 64}'
  # shellcheck disable=SC2059
  "$py" "$(dirname "$0")/a1111_post.py" "$port" "$2" "$(printf "$fmt" "$1")"
}
gen=(--model "$large" --edge-model "$small" --split 3 -n blurry --steps 6 --sampler euler --cfg 5
     --seed 4 --width 64 --height 64 --threads 2 -q)
same() {  # same NAME OUT.png GEN.png: equal pixels
  local cmp
  if cmp=$("$pngcmp" "$2" "$3" 2>&1); then ok "$1: $(tr '\n' ' ' <<<"$cmp")"
  else bad "$1: $(tr '\n' ' ' <<<"$cmp")"; fi
}

out=$(post "a lighthouse at dusk <lora:fit:0.9>" "$tmp/e.png")
if [ "$out" = "200 cloud_k=3 fallback=None" ]; then ok "SDXL + <lora:fit:0.9>: $out"
else bad "SDXL + <lora:fit:0.9>: $out"; fi
"$hsd" generate "${gen[@]}" -p "a lighthouse at dusk " --lora "$fit:0.9" -o "$tmp/g.png" > /dev/null ||
  bad "hsd generate --lora failed"
same "edge --http SDXL + LoRA == hsd generate --split 3 --lora $fit:0.9" "$tmp/e.png" "$tmp/g.png"

out=$(post "a lighthouse at dusk " "$tmp/n.png")
if [ "$out" = "200 cloud_k=3 fallback=None" ]; then ok "SDXL, no LoRA: $out"
else bad "SDXL, no LoRA: $out"; fi
"$hsd" generate "${gen[@]}" -p "a lighthouse at dusk " -o "$tmp/gn.png" > /dev/null ||
  bad "hsd generate failed"
same "edge --http SDXL == hsd generate --split 3" "$tmp/n.png" "$tmp/gn.png"
if ! "$pngcmp" "$tmp/n.png" "$tmp/e.png" > /dev/null 2>&1; then
  ok "control: without the tag != with it"
else bad "control: the LoRA tag changed nothing"; fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
