#!/usr/bin/env bash
# Fail-over across nodes (issue 15; docs/scaling.md §2): three `hsd serve`
# nodes on loopback, EDGES edge clients each given all three endpoints.
# Under load one node is SIGKILLed and another drained with SIGTERM. Every
# edge request must end exactly once: exit 0 with one PNG, either a cloud
# RESULT ("cloud k = 30") or the documented local fallback, never an abort
# and never both. Prints the outcomes and the time to recover: the longest
# time to RESULT of the edges that needed more than one attempt (docs:
# about --timeout-ms, the wait of the attempt that went to the dead node).
#   serve_failover.sh HSD TEST_DATA [EDGES]
# Loopback only; about 40 s with 24 edges.
set -u
hsd=$1; data=$2; edges=${3:-24}
. "$(dirname "$0")/serve_lib.sh"
serve_test_init
tmo=4000
ports=() eps=() pids=() cloud=()
for n in 0 1 2; do
  ports[n]=$(free_port)
  eps[n]="tcp://127.0.0.1:${ports[n]}"
  start_serve "${eps[n]}" "node$n" --grace-ms 20000
  pids[n]=$serve; kill_on_exit+=("$serve")
  cloud+=(--cloud "${eps[n]}")
done
echo "3 nodes: ${eps[*]}"
t0=$SECONDS
for i in $(seq "$edges"); do
  "$hsd" edge "${cloud[@]}" --model "$data/pipeline/edge" --key-file "$tmp/keys" --key-id edge1 \
    --split 30 --steps 32 --seed "$i" --width 64 --height 64 --threads 1 --timeout-ms "$tmo" \
    --retries 20 --deadline-ms 120000 -p "fail-over $i" -o "$tmp/out$i.png" \
    > "$tmp/edge$i.log" 2>&1 &
  edge_pids[i]=$!; kill_on_exit+=("$!")
done
sleep 1.5
kill -9 "${pids[0]}"; wait "${pids[0]}" 2>/dev/null
echo "node 0 SIGKILLed at $((SECONDS - t0)) s"
sleep 1
kill -TERM "${pids[1]}"
echo "node 1 sent SIGTERM (drain, grace 20 s) at $((SECONDS - t0)) s"
cloud_ok=0 local_ok=0 bad=0 retried=0 recover=0 retried_ms=() first_ms=()
for i in $(seq "$edges"); do
  wait "${edge_pids[i]}"; rc=$?
  log="$tmp/edge$i.log"
  c=$(grep -c "cloud k = 30" "$log"); l=$(grep -c "local fallback" "$log")
  if [ "$rc" -ne 0 ] || [ ! -s "$tmp/out$i.png" ] || [ $((c + l)) -ne 1 ] ||
     grep -q "Assertion failed\|Aborted" "$log"; then
    bad=$((bad + 1)); echo "edge $i: exit $rc"; tail -3 "$log"; continue
  fi
  if [ "$c" -eq 1 ]; then
    cloud_ok=$((cloud_ok + 1))
    att=$(grep -o '[0-9]* attempt(s)' "$log" | cut -d' ' -f1)
    ms=$(grep -o '([0-9]* ms to RESULT' "$log" | tr -dc 0-9)
    if [ "${att:-1}" -gt 1 ]; then
      retried=$((retried + 1)); [ "${ms:-0}" -gt "$recover" ] && recover=$ms
      retried_ms+=("${ms:-0}")
    fi
    [ "${att:-1}" -eq 1 ] && first_ms+=("${ms:-0}")
  else
    local_ok=$((local_ok + 1))
  fi
done
wait "${pids[1]}" 2>/dev/null; rc1=$?
echo "node 1 exited with $rc1 after draining"
echo "$edges edges: $cloud_ok cloud RESULT, $local_ok local fallback, $bad failed or duplicated;" \
     "$retried needed another attempt, the slowest got its RESULT after $recover ms" \
     "(attempt timeout $tmo ms); all done $((SECONDS - t0)) s after the start"
# median of a list of integers ("-" when empty)
median() {
  if [ $# -eq 0 ]; then echo -; return; fi
  printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}
echo "time to RESULT: median $(median "${first_ms[@]}") ms of the ${#first_ms[@]} edges served" \
     "at the first attempt, median $(median "${retried_ms[@]}") ms of the $retried that retried"
kill -0 "${pids[2]}" 2>/dev/null || { echo "FAIL node 2 died"; bad=$((bad + 1)); }
[ "$bad" -eq 0 ] && [ "$rc1" -eq 0 ]
