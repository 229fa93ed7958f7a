#!/usr/bin/env bash
# The main job (README "Run it"): install what is missing, build, generate a
# small random-weight SD1.5-shaped U-Net with diffusers, run one hsd U-Net
# forward on it, and check the result against diffusers' own output.
#   scripts/demo.sh [--no-setup]       outputs under out/demo/
# Until the text-to-image pipeline lands (issue 3) the job is `hsd run-unet`;
# the model is random, so the numbers mean nothing beyond parity.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${1:-}" = "--no-setup" ] || scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)"
mkdir -p out/demo
echo "== generating a small SD1.5-shaped random-weight U-Net with diffusers"
.venv/bin/python tests/oracle/make_unet_cases.py --out out/demo --only sd15_narrow >/dev/null
model=out/demo/sd15_narrow
build/host/hsd inspect "$model" | head -9
echo "== hsd run-unet"
build/host/hsd run-unet -v --model "$model" --in "$model/io.safetensors" --out out/demo/unet_out.safetensors
echo "== same forward, single-file LDM checkpoint"
build/host/hsd run-unet --model "$model/model.safetensors" --config "$model/unet/config.json" \
  --in "$model/io.safetensors" --out out/demo/unet_out_ldm.safetensors
echo "== parity with diffusers (max|err| <= 1e-4 x max|ref|)"
.venv/bin/python tests/oracle/compare.py out/demo/unet_out.safetensors:sample "$model/io.safetensors:out"
.venv/bin/python tests/oracle/compare.py out/demo/unet_out_ldm.safetensors:sample "$model/io.safetensors:out"
echo "demo: wrote out/demo/unet_out.safetensors"
