#!/usr/bin/env bash
# Service benchmarks on the CPU backend, one run each, same machine:
#   1. batching gain: images/s at saturation for max batch 2 (one CFG request
#      per U-Net call), 8, 16, 64 rows;
#   2. latency: p99 time to RESULT unloaded (10% of saturation) vs at 70 %
#      (bench/serve_latency.sh, one repeat);
#   3. cloud cost per image: hybrid k=10 of 25 (edge decodes) vs cloud-only
#      (25 cloud steps + cloud decode).
#   bench/serve_bench.sh MODEL_DIR [REQUESTS]      (JSON lines under out/bench/)
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: bench/serve_bench.sh MODEL_DIR [REQUESTS]}; n=${2:-64}
hsd=${HSD:-build/host/hsd}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
mkdir -p out/bench; log=out/bench/serve.jsonl; : > "$log"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores"
sat=0
for b in 2 8 16 64; do
  line=$("$hsd" bench serve --model "$model" --requests "$n" --steps 10 --k-mix 10:1 --max-batch $b 2>/dev/null | tee -a "$log" | grep '"phase":"hybrid"')
  ips=$(sed 's/.*"images_per_s":\([0-9.]*\).*/\1/' <<<"$line")
  echo "max batch $b rows: $ips images/s"
  [ $b = 2 ] && base=$ips
  sat=$ips
done
awk -v a="$sat" -v b="$base" 'BEGIN { printf "batching gain (64 rows vs 2): %.2fx\n", a / b }'
bench/serve_latency.sh "$model" "$n" 1
"$hsd" bench serve --model "$model" --requests "$n" --steps 25 --k-mix 10:1 --max-batch 64 --compare-cost 2>/dev/null | tee -a "$log" | grep -E "^cloud cost"
