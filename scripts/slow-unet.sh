#!/usr/bin/env bash
# Full-size check (ctest label `slow`, not in CI; ~2 GB disk, minutes): an
# SD1.5-config random-weight U-Net (fp16 file) made by diffusers, one 64x64
# batch-2 forward by hsd compared with diffusers' fp32 CPU output, both timed.
#   scripts/slow-unet.sh [sd15|bksdm_tiny] [WORKDIR]   (default build/slow)
set -euo pipefail
cd "$(dirname "$0")/.."
cfg=${1:-sd15}; work=${2:-build/slow}/$cfg
py=${PYTHON:-.venv/bin/python}
if [ ! -f "$work/io.safetensors" ]; then
  mkdir -p "$work"
  echo "== making $cfg with diffusers (and timing its CPU forward)"
  "$py" tests/oracle/make_sd15_full.py "$work" --config "$cfg" | tee "$work.diffusers.json"
fi
echo "== hsd run-unet"
start=$(date +%s.%N)
build/host/hsd run-unet -v --model "$work" --in "$work/io.safetensors" --out "$work/hsd_out.safetensors"
end=$(date +%s.%N)
awk -v a="$start" -v b="$end" 'BEGIN { printf "hsd run-unet wall time (load + forward): %.1f s\n", b - a }'
[ -f "$work.diffusers.json" ] && echo "diffusers: $(tail -1 "$work.diffusers.json")"
"$py" tests/oracle/compare.py "$work/hsd_out.safetensors:sample" "$work/io.safetensors:out"
