#!/usr/bin/env bash
# The main job (README "Run it"): install what is missing, build, generate
# small random-weight models with diffusers (a tiny SD1.5-shaped pipeline as
# the large model, a BK-SDM-Tiny-shaped U-Net as the edge model, a TAESD),
# and write a Hybrid SD image: 25 DPM-Solver++ steps, the first 10 on the
# large U-Net, the rest on the edge U-Net, decoded by the small VAE.
#   scripts/demo.sh [--no-setup]       outputs under out/demo/
# The weights are random: the image is noise-like. The same command works on
# real models (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${1:-}" = "--no-setup" ] || scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)"
mkdir -p out/demo
echo "== generating tiny random-weight models with diffusers (out/demo/large, out/demo/edge)"
.venv/bin/python tests/oracle/make_pipeline_cases.py --out out/demo 2>/dev/null | tail -1
echo "== hsd generate: hybrid, k = 10 of 25 steps"
build/host/hsd generate --model out/demo/large --edge-model out/demo/edge --split 10 \
  --steps 25 --sampler dpmpp-2m --cfg 7.5 --seed 42 --width 128 --height 128 --vae tiny \
  -p "a photo of an astronaut riding a horse on mars" -o out/demo/hybrid.png -v
echo "demo: wrote out/demo/hybrid.png (random weights: a noise-like image)"
