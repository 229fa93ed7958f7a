#!/usr/bin/env bash
# hsd's CPU U-Net forward against diffusers' on the same model, inputs shape
# and thread count, in one run; prints both JSON lines and the speed ratio.
#   bench/unet_vs_diffusers.sh MODEL_DIR [BATCH] [H] [W] [THREADS] [REPEATS]
# Defaults: batch 2, latent 64x64, every core, 3 repeats. MODEL_DIR is a
# diffusers folder (e.g. from tests/oracle/make_sd15_full.py).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: bench/unet_vs_diffusers.sh MODEL_DIR [BATCH] [H] [W] [THREADS] [REPEATS]}
batch=${2:-2}; h=${3:-64}; w=${4:-64}; threads=${5:-$(nproc)}; repeats=${6:-3}
hsd=${HSD:-build/host/hsd}
py=${PYTHON:-.venv/bin/python}
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; threads $threads"
ours=$("$hsd" bench unet --model "$model" --batch "$batch" --height "$h" --width "$w" \
       --threads "$threads" --repeats "$repeats" | tail -1)
theirs=$("$py" bench/diffusers_unet_cpu.py --model "$model" --batch "$batch" --height "$h" \
         --width "$w" --threads "$threads" --repeats "$repeats" | tail -1)
echo "$ours"
echo "$theirs"
"$py" - "$ours" "$theirs" <<'PY'
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(json.dumps({"compare": "hsd_vs_diffusers_cpu", "hsd_ms": a["ms"], "diffusers_ms": b["ms"],
                  "speedup": round(b["ms"] / a["ms"], 3), "hsd_gflops": a.get("gflops")}))
PY
