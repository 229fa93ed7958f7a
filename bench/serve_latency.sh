#!/usr/bin/env bash
# Latency under load (docs/architecture.md §7 "service": p99 at 70 % of
# saturation ≤ 1.5x unloaded, losing ≤ 10 % of saturated throughput), on
# the CPU backend with `hsd bench serve` (in-process service, HMAC-signed
# open-loop Poisson clients, 64x64, CFG 7.5, k = 10 of 10, max batch 64).
# Each repeat measures, back to back: saturated images/s (all requests at
# once), then p99 time to RESULT at 10 % of that rate ("unloaded") and at
# 70 %. Saturation is re-measured in every repeat so that 70 % is of the
# capacity the machine has right then (a shared machine's capacity drifts);
# the ratio of the two p99s is taken within the repeat, and the median over
# repeats is printed.
#   bench/serve_latency.sh MODEL_DIR [REQUESTS] [REPEATS]   (JSON lines in
#   out/bench/serve_latency.jsonl)
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: bench/serve_latency.sh MODEL_DIR [REQUESTS] [REPEATS]}
n=${2:-100}; repeats=${3:-3}
hsd=${HSD:-build/host/hsd}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
mkdir -p out/bench; log=out/bench/serve_latency.jsonl; : > "$log"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, load average" \
     "$(cut -d' ' -f1-3 /proc/loadavg) at the start"

# run RATE: one `hsd bench serve` run; prints its hybrid JSON line.
run() {
  "$hsd" bench serve --model "$model" --requests "$n" --steps 10 --k-mix 10:1 --max-batch 64 \
    --rate "$1" 2>/dev/null | tee -a "$log" | grep '"phase":"hybrid"'
}
field() { sed "s/.*\"$1\":\([0-9.]*\).*/\1/" <<<"$2"; }

ratios=()
for r in $(seq "$repeats"); do
  sat=$(field images_per_s "$(run 0)")
  lo=$(run "$(awk -v s="$sat" 'BEGIN { printf "%.3f", s * 0.1 }')")
  hi=$(run "$(awk -v s="$sat" 'BEGIN { printf "%.3f", s * 0.7 }')")
  ratio=$(awk -v a="$(field p99_ms "$hi")" -v b="$(field p99_ms "$lo")" 'BEGIN { printf "%.2f", a / b }')
  ratios+=("$ratio")
  echo "repeat $r: saturated $sat images/s;" \
       "10 %: p50 $(field p50_ms "$lo") ms, p99 $(field p99_ms "$lo") ms;" \
       "70 %: p50 $(field p50_ms "$hi") ms, p99 $(field p99_ms "$hi") ms," \
       "$(field images_per_s "$hi") images/s done (offered $(awk -v s="$sat" 'BEGIN { printf "%.2f", s * 0.7 }'));" \
       "p99 ratio ${ratio}x"
done
echo "median p99(70 %) / p99(10 %) over $repeats repeat(s): $(printf '%s\n' "${ratios[@]}" | sort -g |
  awk '{ a[NR] = $1 } END { print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }')x" \
  "(target <= 1.5x); load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
