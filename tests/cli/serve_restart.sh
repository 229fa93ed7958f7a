#!/usr/bin/env bash
# The service killed (SIGKILL) and restarted under load: edge clients retry
# (fresh signatures, backoff) and every one still gets its cloud RESULT.
#   serve_restart.sh HSD TEST_DATA
set -u
hsd=$1; data=$2
tmp=$(mktemp -d); pids=()
cleanup() { kill -9 "${pids[@]}" 2>/dev/null; kill -9 "${serve:-0}" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
export OMP_WAIT_POLICY=passive
. "$(dirname "$0")/serve_lib.sh"
new_keys "$tmp/keys" edge1
ep="ipc://$tmp/s.ipc"
# Two threads: the timeouts below assume the cloud keeps up with 12 edges
# (the batcher ran on every core whatever --threads said until it honoured it).
start() { start_serve "$ep" "$1" --threads 2; }
start 1
n=8
for i in $(seq $n); do
  "$hsd" edge --cloud "$ep" --model "$data/pipeline/edge" --key-file "$tmp/keys" --key-id edge1 \
    --split 60 --steps 64 --seed "$i" --width 64 --height 64 --threads 1 --timeout-ms 8000 \
    --retries 20 --no-fallback -q -p "restart $i" -o "$tmp/out$i.png" > "$tmp/edge$i.log" 2>&1 &
  pids+=($!)
done
sleep 0.8
grep -q "shutting" "$tmp/serve.1.log" && { echo "service finished before the kill: not under load"; exit 1; }
kill -9 "$serve"; wait "$serve" 2>/dev/null
echo "service killed under load"
sleep 0.5
start 2
echo "service restarted"
ok=0
for i in $(seq $n); do
  if wait "${pids[$((i-1))]}" && [ -s "$tmp/out$i.png" ] && grep -q "cloud k = 60" "$tmp/edge$i.log"; then
    ok=$((ok+1))
  else
    echo "edge $i: $(cat "$tmp/edge$i.log")"
  fi
done
pids=()
echo "$ok/$n edge clients finished with a cloud RESULT after the restart"
echo "$ok passed, $((n-ok)) failed"
[ "$ok" -eq "$n" ]
