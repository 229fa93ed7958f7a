#!/usr/bin/env bash
# Issue 10, item 3: `hsd serve --warmup` plans every (bucket, size) before
# serving and prints each one's time; hsd_plans_total on /metrics counts
# planning passes, arena growths, graph captures, conv timings and GEMM
# plans (core/plan_stats.h), and requests of warmed shapes leave it flat.
#   1. hsd bench serve (in-process service, buckets 1,2,4): without warm-up
#      the run itself plans (unet_plan > 0); after --warmup it plans,
#      grows, records and tunes nothing.
#   2. hsd serve --warmup --buckets 1,2,4 --max-batch 4 --warmup-sizes 64:
#      one warm-up line per bucket, /metrics unet_plan = 3 (3 buckets x 1
#      size), and still 3, arena growths unchanged, after an edge request.
#   serve_warmup.sh HSD TEST_DATA
# Loopback only; about 15 s.
set -u
hsd=$1; data=$2
. "$(dirname "$0")/serve_lib.sh"
serve_test_init
fail=0
check() { if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi; }

# plans_json LOG: the bench's plans_during_run object, one "kind count" a line.
plans_of() {
  python3 - "$1" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    if '"plans_during_run"' in line:
        for k, v in json.loads(line)["plans_during_run"].items():
            print(k, v)
PY
}
bench() {
  "$hsd" bench serve --model "$data/pipeline/large" --requests 8 --rate 40 --steps 2 \
    --k-mix 2:1 --size 64 --max-batch 4 --buckets 1,2,4 --threads 1 "$@" > "$tmp/bench.log" 2>&1
}
bench; cold=$(plans_of "$tmp/bench.log")
bench --warmup; warm=$(plans_of "$tmp/bench.log")
echo "without warm-up, the run added: $(echo $cold)"
echo "after warm-up, the run added:   $(echo $warm)"
check "the cold run planned" '[ "$(echo "$cold" | awk "/^unet_plan /{print \$2}")" -gt 0 ]'
check "the warmed run planned, grew, recorded and tuned nothing" \
  '[ -n "$warm" ] && [ -z "$(echo "$warm" | awk "\$2 != 0")" ]'
grep -q "warm-up device 0: 4 rows at 64x64" "$tmp/bench.log" ||
  { echo "FAIL no warm-up line in the bench log"; cat "$tmp/bench.log"; fail=1; }

port=$(free_port); mport=$(free_port)
start_serve "tcp://127.0.0.1:$port" 1 --metrics-port "$mport" --warmup --warmup-sizes 64 \
  --buckets 1,2,4 --max-batch 4
grep "warm-up" "$tmp/serve.1.log"
check "one warm-up line per bucket" '[ "$(grep -c "rows at 64x64" "$tmp/serve.1.log")" = 3 ]'
metric() {
  python3 -c 'import sys, urllib.request as u; print(u.urlopen(sys.argv[1], timeout=5).read().decode())' \
    "http://127.0.0.1:$mport/metrics" | awk -v k="hsd_plans_total{kind=\"$1\"}" '$1 == k {print $2}'
}
p0=$(metric unet_plan); a0=$(metric arena_growth)
echo "after warm-up: unet_plan $p0, arena_growth $a0"
check "/metrics: 3 planning passes (3 buckets x 1 size)" '[ "$p0" = 3 ]'
edge_once "tcp://127.0.0.1:$port" "at a warmed size" || fail=1
p1=$(metric unet_plan); a1=$(metric arena_growth)
echo "after a request: unet_plan $p1, arena_growth $a1"
check "serving a warmed shape left the counters flat" '[ "$p1" = "$p0" ] && [ "$a1" = "$a0" ]'
exit $fail
