#!/usr/bin/env bash
# hsd generate: every bad input gets a clear error before compute and leaves
# no file behind; a good run writes a PNG carrying its parameters.
#   generate_errors.sh HSD TEST_DATA
set -u
hsd=$1; data=$2
large=$data/pipeline/large; edge=$data/pipeline/edge
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
expect_fail() {  # expect_fail "what" "message part" args...
  local what=$1 want=$2; shift 2
  local out rc
  out=$("$hsd" generate "$@" 2>&1); rc=$?
  if [ $rc -ne 0 ] && grep -qF -- "$want" <<<"$out" && [ -z "$(ls -A "$tmp")" ]; then
    pass=$((pass+1)); echo "ok   $what: $out"
  else
    fail=$((fail+1)); echo "FAIL $what (rc=$rc, files: $(ls "$tmp")): $out"
  fi
}
base=(--model "$large" -p "a cat" --width 64 --height 64 --steps 4 -o "$tmp/x.png")
expect_fail "invalid UTF-8 prompt" "invalid UTF-8" --model "$large" -p $'bad \xff' --width 64 --height 64 -o "$tmp/x.png"
expect_fail "size not a multiple" "multiples of 64" --model "$large" -p "a" --width 60 --height 64 -o "$tmp/x.png"
expect_fail "steps 0" "--steps" "${base[@]}" --steps 0
expect_fail "steps > 1000" "--steps" "${base[@]}" --steps 1001
expect_fail "k > N" "larger than" "${base[@]}" --edge-model "$edge" --split 9
expect_fail "split without edge" "--split needs --edge-model" "${base[@]}" --split 2
expect_fail "unknown sampler" "unknown sampler" "${base[@]}" --sampler heun
expect_fail "bad cpu precision" "expected fp32 or bf16" "${base[@]}" --cpu-precision fp16
expect_fail "bf16 on a GPU" "applies to the CPU backend only" "${base[@]}" --backend cuda --cpu-precision bf16
expect_fail "missing tokenizer" "tokenizer" --model "$data/unet/sd15_narrow" -p "a" --width 64 --height 64 -o "$tmp/x.png"
expect_fail "mismatched pair" "cannot work together" "${base[@]}" --edge-model "$data/unet/bksdm_tiny" --split 2
expect_fail "unwritable output" "cannot write" --model "$large" -p "a" --width 64 --height 64 -o "$tmp/no/such/dir/x.png"
expect_fail "no model" "no such" --model "$tmp/nothing" -p "a" --width 64 --height 64 -o "$tmp/x.png"
# SDXL: micro-conditioning flags and pairs across families.
xl=$data/pipeline_sdxl
xbase=(--model "$xl/large" -p "a cat" --width 32 --height 32 --steps 2 -o "$tmp/x.png")
expect_fail "crop without left" "--crop expects TOP,LEFT" "${xbase[@]}" --crop 16
expect_fail "original size 0" "--original-size expects" "${xbase[@]}" --original-size 0x1024
expect_fail "SDXL + SD 1.x edge" "addition_embed_type" "${xbase[@]}" --edge-model "$edge" --split 1
expect_fail "SD 1.x + SDXL edge" "addition_embed_type" "${base[@]}" --edge-model "$xl/edge/unet" --split 1
# Missing scheduler config: a copy of the model without scheduler/.
mkdir -p "$tmp/m" && cp -r "$large"/. "$tmp/m/" && rm -rf "$tmp/m/scheduler"
out=$("$hsd" generate --model "$tmp/m" -p a --width 64 --height 64 -o "$tmp/m.png" 2>&1); rc=$?
if [ $rc -ne 0 ] && grep -q scheduler <<<"$out" && [ ! -e "$tmp/m.png" ]; then pass=$((pass+1)); echo "ok   missing scheduler: $out"; else fail=$((fail+1)); echo "FAIL missing scheduler: $out"; fi
rm -rf "$tmp/m"
# A good run: PNG written, parameters in its text chunk.
if "$hsd" generate "${base[@]}" -q >/dev/null 2>&1 && [ -s "$tmp/x.png" ] && grep -q '"seed":0' "$tmp/x.png"; then
  pass=$((pass+1)); echo "ok   good run writes a PNG with its parameters"
else
  fail=$((fail+1)); echo "FAIL good run"
fi
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
