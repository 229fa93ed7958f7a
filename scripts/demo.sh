#!/usr/bin/env bash
# The main job (README "Run it"): install what is missing, build, generate
# small random-weight models with diffusers (a tiny SD1.5-shaped pipeline as
# the cloud's large model, a BK-SDM-Tiny-shaped pipeline as the edge model,
# TAESD), start the cloud service `hsd serve` on loopback, and have an edge
# worker `hsd edge` ask it for the first 10 of 25 steps, finish the rest with
# its own U-Net, decode with the small VAE and write out/demo/hybrid.png.
#   scripts/demo.sh [--no-setup]
# The weights are random: the image is noise-like. The same commands work on
# real models (README "The cloud service").
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${1:-}" = "--no-setup" ] || scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)"
# Service and edge share this machine's cores: sleeping OpenMP waits.
export OMP_WAIT_POLICY=passive
mkdir -p out/demo
echo "== generating tiny random-weight models with diffusers (out/demo/large, out/demo/edge)"
.venv/bin/python tests/oracle/make_pipeline_cases.py --out out/demo 2>/dev/null | tail -1
# A client key for the edge (32 random bytes, hex), readable by us only.
keys=out/demo/keys.txt
(umask 077; echo "edge1 $(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')" > "$keys")
port=$((20000 + RANDOM % 20000))
echo "== hsd serve on tcp://127.0.0.1:$port"
build/host/hsd serve --model out/demo/large --bind "tcp://127.0.0.1:$port" --keys "$keys" \
  --max-batch 16 > out/demo/serve.log 2>&1 &
serve_pid=$!
trap 'kill $serve_pid 2>/dev/null; wait $serve_pid 2>/dev/null' EXIT
for _ in $(seq 50); do grep -q "ready on" out/demo/serve.log && break; sleep 0.1; done
echo "== hsd edge: cloud runs k = 10 of 25 steps, the edge the rest"
build/host/hsd edge --cloud "tcp://127.0.0.1:$port" --model out/demo/edge --key-file "$keys" \
  --key-id edge1 --split 10 --steps 25 --sampler dpmpp-2m --cfg 7.5 --seed 42 \
  --width 128 --height 128 --vae tiny --no-fallback \
  -p "a photo of an astronaut riding a horse on mars" -o out/demo/hybrid.png
kill -TERM $serve_pid; wait $serve_pid || true; trap - EXIT
echo "demo: wrote out/demo/hybrid.png (random weights: a noise-like image)"
