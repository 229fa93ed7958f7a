#!/usr/bin/env bash
# LCM and LoRA through `hsd edge --http` (the AUTOMATIC1111 API), on
# loopback only (hsd serve on ipc:// in a temp dir, the daemon on
# 127.0.0.1, a free port):
# - sampler_name "LCM" with a prompt's <lora:kohya:0.8> (A1111's extra
#   network syntax; kohya registered at start with --lora NAME=FILE on both
#   sides): the cloud runs k = 2 of 4 LCM steps with the LoRA, the edge
#   finishes with it: the pixels (and IDAT bytes) of hsd generate --lora
#   FILE:0.8 --sampler lcm (LCM-LoRA: CFG 1.5) on the prompt without the tag;
# - control: the same request without the tag gives other pixels, and the
#   pixels of hsd generate without --lora;
# - 422 with A1111's error shape for an unknown LoRA name, a multiplier that
#   is not a number or is out of range, another kind of extra network;
# - GET /sdapi/v1/samplers lists LCM.
#   edge_http_lora.sh HSD PNGCMP TEST_DATA PYTHON
set -u
hsd=$1; pngcmp=$2; data=$3; py=$4
large=$data/pipeline/large; kohya=$data/lora/kohya.safetensors
# shellcheck source=harness.sh
. "$(dirname "$0")/harness.sh"
edge_pid=
trap 'if [ -n "$edge_pid" ]; then kill "$edge_pid" 2>/dev/null; wait "$edge_pid" 2>/dev/null; fi; cleanup' EXIT
export OMP_WAIT_POLICY=PASSIVE

# One thread everywhere: thread counts decide how sums split, and the
# images compared must come from the same count.
start_serve "$hsd" "$large" --threads 1 --lora "kohya=$kohya" ||
  { echo "hsd serve did not start:"; cat "$tmp/serve.log"; exit 1; }
start_edge_http "$hsd" --model "$large" --threads 1 --cloud "$ep" --key-file "$tmp/keys" \
  --key-id edge-1 --split 2 --no-fallback --lora "kohya=$kohya"

# post PROMPT SAMPLER OUT.png: prints "STATUS DETAIL" (DETAIL: the error, or
# the cloud's k and fallback of the image, which goes to OUT.png).
post() {
  local fmt='{"prompt": "%s", "negative_prompt": "blurry", "steps": 4, "sampler_name": "%s",
             "cfg_scale": 1.5, "seed": 11, "width": 64, "height": 64}'
  # shellcheck disable=SC2059
  "$py" "$(dirname "$0")/a1111_post.py" "$port" "$3" "$(printf "$fmt" "$1" "$2")"
}
gen=(--model "$large" -n blurry --steps 4 --sampler lcm --cfg 1.5 --seed 11 --width 64
     --height 64 --threads 1 -q)

out=$(post "a lighthouse at dusk <lora:kohya:0.8>" LCM "$tmp/e.png")
if [ "$out" = "200 cloud_k=2 fallback=None" ]; then ok "LCM + <lora:kohya:0.8>: $out"
else bad "LCM + <lora:kohya:0.8>: $out"; fi
"$hsd" generate "${gen[@]}" -p "a lighthouse at dusk " --lora "$kohya:0.8" -o "$tmp/g.png" > /dev/null ||
  bad "hsd generate --lora failed"
if cmp=$("$pngcmp" "$tmp/e.png" "$tmp/g.png" 2>&1); then
  ok "edge --http LCM-LoRA == hsd generate --lora $kohya:0.8 --sampler lcm: $cmp"
else bad "edge --http LCM-LoRA vs hsd generate: $cmp"; fi

out=$(post "a lighthouse at dusk " LCM "$tmp/n.png")
"$hsd" generate "${gen[@]}" -p "a lighthouse at dusk " -o "$tmp/gn.png" > /dev/null ||
  bad "hsd generate failed"
if [ "${out%% *}" = 200 ] && "$pngcmp" "$tmp/n.png" "$tmp/gn.png" > /dev/null 2>&1 &&
   ! "$pngcmp" "$tmp/n.png" "$tmp/e.png" > /dev/null 2>&1; then
  ok "control: without the tag == hsd generate without --lora, != with it"
else bad "control without the tag: $out"; fi

refused() {  # refused PROMPT SAMPLER WANT
  local got; got=$(post "$1" "$2" "$tmp/x.png")
  if [ "${got%% *}" = 422 ] && grep -qF -- "$3" <<<"$got"; then ok "422 for $1 / $2: $got"
  else bad "$1 / $2: want 422 '...$3...', got: $got"; fi
}
refused "a cat <lora:nope:1>" LCM "LoRA 'nope' not found (this edge has 'kohya')"
refused "a cat <lora:kohya:much>" LCM "'much' is not a number"
refused "a cat <lora:kohya:40>" "DPM++ 2M" "outside [-16, 16]"
refused "a cat <hypernet:x:1>" LCM "extra network 'hypernet' is not supported"
refused "a cat" "LCM Karras" "Sampler not found"

if "$py" -c "import json, sys, urllib.request
names = [s['name'] for s in json.load(urllib.request.urlopen(
    'http://127.0.0.1:$port/sdapi/v1/samplers', timeout=10))]
sys.exit(0 if 'LCM' in names else 1)"; then ok "GET /sdapi/v1/samplers lists LCM"
else bad "GET /sdapi/v1/samplers lacks LCM"; fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
