#!/usr/bin/env bash
# hsd's CPU backend against diffusers (fp32, and bf16 autocast where the CPU
# has avx512_bf16/amx_bf16) on random-weight SD1.5 and BK-SDM-Tiny + TAESD
# pipelines stored fp16: U-Net batch 1 and 2, VAE decode, text-to-image
# wall, load and peak RSS, every figure beside its peer from the same run.
# Nothing comes from the network: the pipelines are made by
# tests/oracle/make_full_pipeline.py (about 2.7 GB, kept in WORK for the
# next run) and hsd is built from this tree.
#   bench/cpu_vs_peers.sh [WORK] [THREADS] [REPEATS]
# Defaults: build/peers, every core, 2 timed U-Net repeats. Takes ~15 min on
# 2 cores (full-size SD1.5 at 512^2). Results: bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-build/peers}; threads=${2:-$(nproc)}; repeats=${3:-2}
py=${PYTHON:-.venv/bin/python}
hsd=${HSD:-build/host/hsd}
[ -x "$hsd" ] || cmake --build build --target hsd
"$py" tests/oracle/make_full_pipeline.py "$work" >/dev/null 2>&1 ||
  "$py" tests/oracle/make_full_pipeline.py "$work"
exec "$py" bench/cpu_vs_peers.py --work "$work" --hsd "$hsd" --threads "$threads" \
  --repeats "$repeats"
