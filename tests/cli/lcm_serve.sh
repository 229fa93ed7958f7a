#!/usr/bin/env bash
# The Hybrid SD LCM split over the network (ipc://, loopback only): hsd
# serve with an LCM-distilled U-Net runs the first 4 of 8 lcm steps, the
# RESULT carries the sampler state (version 2: LCMScheduler's keys, the
# generator that re-noises each step) and no unconditional embedding (LCM
# U-Nets take the guidance scale as an input), and hsd edge finishes on its
# LCM edge U-Net: the pixels (and IDAT bytes) of hsd generate --edge-model
# EDGE --split 4. Control: another guidance scale gives other pixels.
#   lcm_serve.sh HSD PNGCMP TEST_DATA
set -u
hsd=$1; pngcmp=$2; data=$3
large=$data/lcm/large
# shellcheck source=harness.sh
. "$(dirname "$0")/harness.sh"

# The edge's pipeline folder: the LCM edge U-Net with the large model's
# tokenizer, text encoder, VAE and scheduler config.
mkdir -p "$tmp/edge"
for part in tokenizer text_encoder vae scheduler; do ln -s "$large/$part" "$tmp/edge/$part"; done
ln -s "$data/lcm/edge/unet" "$tmp/edge/unet"

ep="ipc://$tmp/cloud.ipc"
"$hsd" serve --model "$large" --bind "$ep" --no-auth --threads 2 > "$tmp/serve.log" 2>&1 &
srv_pid=$!
for _ in $(seq 100); do grep -q ready "$tmp/serve.log" && break; sleep 0.1; done
grep -q ready "$tmp/serve.log" || { echo "hsd serve did not start:"; cat "$tmp/serve.log"; exit 1; }

common=(-p "a cat wearing sunglasses" --width 64 --height 64 --seed 5 --threads 2 -q
        --sampler lcm --steps 8)
run_pair() {  # run_pair EDGE_CFG GENERATE_CFG -> pngcmp rc
  rm -f "$tmp/e.png" "$tmp/g.png"
  "$hsd" edge --cloud "$ep" --model "$tmp/edge" "${common[@]}" --split 4 --cfg "$1" \
    -o "$tmp/e.png" > "$tmp/edge.log" 2>&1 || { cat "$tmp/edge.log"; return 2; }
  if grep -q '"fallback"' "$tmp/e.png"; then cat "$tmp/edge.log"; return 2; fi
  "$hsd" generate --model "$large" --edge-model "$data/lcm/edge" --split 4 "${common[@]}" \
    --cfg "$2" -o "$tmp/g.png" > /dev/null 2>&1 || return 2
  "$pngcmp" "$tmp/e.png" "$tmp/g.png" > "$tmp/cmp.log" 2>&1
}
run_pair 8 8; rc=$?
if [ $rc -eq 0 ]; then ok "lcm 4 + 4 via serve == generate --split 4: $(tr '\n' ' ' < "$tmp/cmp.log")"
else bad "lcm 4 + 4 via serve (rc=$rc): $(cat "$tmp/cmp.log" 2>/dev/null)"; fi
run_pair 8 2; rc=$?
if [ $rc -eq 1 ]; then ok "control: guidance 8 vs 2 differ"
else bad "control: guidance 8 vs 2 (rc=$rc)"; fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
