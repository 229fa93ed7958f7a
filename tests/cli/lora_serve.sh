#!/usr/bin/env bash
# LoRAs chosen per request through hsd serve (ipc://, loopback only):
# - hsd edge --lora NAME=FILE:SCALE names the LoRA in GENERATE, the cloud
#   runs its k steps with it, the edge finishes with the same LoRA on its
#   own U-Net: the pixels (and IDAT bytes) of hsd generate --lora
#   FILE:SCALE with the same U-Net (one LoRA; two at once, one negative;
#   LCM-LoRA: the lcm sampler with CFG 1.5);
# - control: the same request without the LoRA gives other pixels;
# - an edge U-Net the LoRA does not fit (the BK-SDM-shaped edge model) is
#   refused before any request, naming the layer; a LoRA name the service
#   does not have is refused by the service (BAD_REQUEST).
#   lora_serve.sh HSD PNGCMP TEST_DATA
set -u
hsd=$1; pngcmp=$2; data=$3
large=$data/pipeline/large; edge=$data/pipeline/edge
kohya=$data/lora/kohya.safetensors; peft=$data/lora/peft.safetensors
# shellcheck source=harness.sh
. "$(dirname "$0")/harness.sh"

hex() { od -An -tx1 -N32 /dev/urandom | tr -d ' \n'; }
printf 'edge-1 %s\n' "$(hex)" > "$tmp/keys"; chmod 600 "$tmp/keys"
ep="ipc://$tmp/cloud.ipc"
"$hsd" serve --model "$large" --bind "$ep" --keys "$tmp/keys" --threads 2 \
  --lora "kohya=$kohya" --lora "peft=$peft" > "$tmp/serve.log" 2>&1 &
srv_pid=$!
for _ in $(seq 100); do grep -q ready "$tmp/serve.log" && break; sleep 0.1; done
grep -q ready "$tmp/serve.log" || { echo "hsd serve did not start:"; cat "$tmp/serve.log"; exit 1; }

common=(-p "a lighthouse at dusk" -n "blurry" --width 64 --height 64 --seed 11 --threads 2 -q)
cloud=(--cloud "$ep" --key-file "$tmp/keys" --key-id edge-1)

# same NAME "edge args" "generate args": equal pixels; DIFF instead of NAME: must differ.
same() {
  local name=$1 e=$2 g=$3 out rc want=0
  [ "${name#DIFF}" != "$name" ] && want=1
  rm -f "$tmp/e.png" "$tmp/g.png"
  # shellcheck disable=SC2086
  if ! out=$("$hsd" edge "${cloud[@]}" --model "$large" "${common[@]}" $e -o "$tmp/e.png" 2>&1) ||
     grep -q '"fallback"' "$tmp/e.png"; then bad "$name: hsd edge: $out"; return; fi
  # shellcheck disable=SC2086
  if ! out=$("$hsd" generate --model "$large" "${common[@]}" $g -o "$tmp/g.png" 2>&1); then
    bad "$name: hsd generate: $out"; return; fi
  out=$("$pngcmp" "$tmp/e.png" "$tmp/g.png" 2>&1); rc=$?
  if { [ $want -eq 0 ] && [ $rc -eq 0 ]; } || { [ $want -eq 1 ] && [ $rc -ne 0 ]; }; then
    ok "$name: $(tr '\n' ' ' <<<"$out")"
  else
    bad "$name (pngcmp rc=$rc): $out"
  fi
}
same "kohya 0.8, k=3 of 6" "--split 3 --steps 6 --lora kohya=$kohya:0.8" "--steps 6 --lora $kohya:0.8"
same "kohya 0.5 + peft -0.7, euler, k=2 of 5" \
     "--split 2 --steps 5 --sampler euler --lora kohya=$kohya:0.5 --lora peft=$peft:-0.7" \
     "--steps 5 --sampler euler --lora $kohya:0.5 --lora $peft:-0.7"
same "LCM-LoRA: kohya 0.8, lcm, cfg 1.5, k=2 of 4" \
     "--split 2 --steps 4 --sampler lcm --cfg 1.5 --lora kohya=$kohya:0.8" \
     "--steps 4 --sampler lcm --cfg 1.5 --lora $kohya:0.8"
same "DIFF control: no LoRA on the edge request" "--split 3 --steps 6" "--steps 6 --lora $kohya:0.8"

out=$("$hsd" edge "${cloud[@]}" --model "$edge" "${common[@]}" --split 2 --steps 4 \
      --lora "kohya=$kohya:1" -o "$tmp/x.png" 2>&1); rc=$?
if [ $rc -ne 0 ] && grep -q "does not fit" <<<"$out" && [ ! -e "$tmp/x.png" ]; then
  ok "a LoRA that does not fit the edge U-Net is refused: $out"
else bad "edge U-Net without the LoRA's layers (rc=$rc): $out"; fi

out=$("$hsd" edge "${cloud[@]}" --model "$large" "${common[@]}" --split 2 --steps 4 --no-fallback \
      --lora "nope=$kohya:1" -o "$tmp/x.png" 2>&1); rc=$?
if [ $rc -ne 0 ] && grep -q "unknown LoRA 'nope'" <<<"$out" && [ ! -e "$tmp/x.png" ]; then
  ok "a LoRA the service does not have: $out"
else bad "unknown LoRA name (rc=$rc): $out"; fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
