#!/usr/bin/env bash
# --prompt-style a1111 end to end on the tiny pipeline (tests/data/pipeline/large)
# with the 198-token prompt of tests/data/prompt (3 chunks, context 231):
# - hsd generate --prompt-style a1111 matches diffusers fed the oracle's
#   prompt_embeds (tests/oracle/make_prompt_cases.py): every 8-bit channel
#   within 1/255 (test_pipeline's bound), checked with PIL;
# - hsd edge --prompt-style a1111 through a real hsd serve (k = 2 of 5 on the
#   cloud, the rest on the edge with the cloud's 231-token embeddings) equals
#   that hsd generate bitwise (pixels and IDAT), as the rest of the chain;
# - the default style differs (truncation at 77), and a malformed weight is
#   a clear error from generate and from edge (which checks before sending;
#   serve's own BAD_REQUEST for it is in test_service).
#   prompt_a1111.sh HSD PNGCMP PYTHON DATA_DIR
set -u
hsd=$1; pngcmp=$2; py=$3; data=$4
# shellcheck source=harness.sh
. "$(dirname "$0")/harness.sh"
model=$data/pipeline/large
read_case() { "$py" -c "import json,sys; print(json.load(open('$data/prompt/cases.json'))['pipeline'][sys.argv[1]])" "$1"; }
prompt=$(read_case prompt); neg=$(read_case negative)
common=(-p "$prompt" -n "$neg" --sampler euler --steps 5 --cfg 7.5 --seed 3 --width 64 --height 64
        --threads 2 -q)

if out=$("$hsd" generate --model "$model" --prompt-style a1111 "${common[@]}" -o "$tmp/g.png" 2>&1); then
  if "$py" -c "import PIL, safetensors" 2>/dev/null; then
    worst=$("$py" - "$tmp/g.png" "$data/prompt/goldens.safetensors" <<'PY'
import sys
import numpy as np
from PIL import Image
from safetensors.numpy import load_file
got = np.asarray(Image.open(sys.argv[1]).convert("RGB")).astype(int)
ref = load_file(sys.argv[2])["long200.rgb"][0].astype(int)
print(int(np.abs(got - ref).max()) if got.shape == ref.shape else 999)
PY
)
    if [ "$worst" -le 1 ]; then ok "generate --prompt-style a1111 (198 tokens): within $worst/255 of diffusers"
    else bad "generate --prompt-style a1111: $worst/255 from diffusers"; fi
  else
    echo "PIL/safetensors missing: the diffusers comparison is skipped (test_prompt_a1111 makes it)"
  fi
else
  bad "generate --prompt-style a1111: $out"
fi

if ! out=$("$hsd" generate --model "$model" "${common[@]}" -o "$tmp/d.png" 2>&1) || [ ! -s "$tmp/g.png" ]; then
  bad "default style: $out"
elif "$pngcmp" "$tmp/g.png" "$tmp/d.png" >/dev/null 2>&1; then bad "default style gives the a1111 image"
else ok "default style (truncated at 77) gives other pixels"; fi

if out=$("$hsd" generate --model "$model" --prompt-style a1111 -p "(a:1.2.3)" -o "$tmp/x.png" -q 2>&1); then
  bad "malformed weight accepted"
elif grep -q "malformed weight" <<<"$out"; then ok "generate: $out"
else bad "generate: unclear error: $out"; fi

# serve on generate's thread count: the text encoder's bits depend on it
# (hsd run-text --threads 1 vs 2 differ in the last bits, with either
# attention version), and the comparison is bitwise.
if start_serve "$hsd" "$model" --threads 2; then
  edge=(edge --cloud "$ep" --model "$model" --key-file "$tmp/keys" --key-id edge-1 --no-fallback
        --split 2 --prompt-style a1111)
  if out=$("$hsd" "${edge[@]}" "${common[@]}" -o "$tmp/e.png" 2>&1) &&
     cmp=$("$pngcmp" "$tmp/g.png" "$tmp/e.png" 2>&1); then
    ok "edge --prompt-style a1111 via serve (k=2) == generate: $(tr '\n' ' ' <<<"$cmp")"
  else
    bad "edge via serve: $out ${cmp:-}"
  fi
  if out=$("$hsd" "${edge[@]}" -p "(a:1..2)" -o "$tmp/x.png" -q --steps 2 2>&1); then
    bad "edge accepted a malformed weight"
  elif grep -q "malformed weight" <<<"$out"; then ok "edge: $(tail -1 <<<"$out")"
  else bad "edge: unclear error: $out"; fi
else
  bad "hsd serve did not start: $(cat "$tmp/serve.log")"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
