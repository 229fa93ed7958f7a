#!/usr/bin/env bash
# Issue 15, finding 6: a slowloris on the metrics port must not take the
# denoising service down. The service runs under `ulimit -n 256`; 400
# connections open on --metrics-port and send half a request, then go
# quiet. Before, libmicrohttpd (select(), no cap, no timeout) took every
# descriptor, and new edge clients timed out. Now the HTTP server holds at
# most 16 connections on its own threads and drops idle ones after 10 s
# (scheduler/metrics_http.h): an edge client is served while the attack
# lasts, and GET /metrics answers again once the idle ones are dropped.
#   serve_slowloris.sh HSD TEST_DATA
# Loopback only; about 20 s.
set -u
hsd=$1; data=$2
. "$(dirname "$0")/serve_lib.sh"
serve_test_init
port=$(free_port); mport=$(free_port)
serve_ulimit="-n 256"
start_serve "tcp://127.0.0.1:$port" 1 --metrics-port "$mport"
echo "hsd serve (ulimit -n 256) on tcp://127.0.0.1:$port, metrics on $mport"

# loris N: N non-blocking connects to the metrics port, half a request
# each, then silence for a minute (killed before that).
loris() {
  exec python3 - "$mport" "$1" <<'PY'
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
held = []
for _ in range(n):
    s = socket.socket()
    s.setblocking(False)
    try:
        s.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    except OSError:
        s.close()
        continue
    held.append(s)
time.sleep(0.5)
sent = 0
for s in held:
    try:
        s.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        sent += 1
    except OSError:
        pass
print(f"{len(held)} connections opened, {sent} half-requests sent", flush=True)
time.sleep(60)
PY
}
# metrics_within S: GET /metrics answers within S seconds; prints how long it took.
metrics_within() {
  local t0=$SECONDS
  while [ $((SECONDS - t0)) -lt "$1" ]; do
    if python3 -c 'import sys, urllib.request as u; print(u.urlopen(sys.argv[1], timeout=1).read().decode())' \
         "http://127.0.0.1:$mport/metrics" 2>/dev/null | grep -q '^hsd_queue_depth'; then
      echo "$((SECONDS - t0))"; return 0
    fi
    sleep 0.2
  done
  echo "$((SECONDS - t0))"; return 1
}
fail=0
# 1. 400 connections: more than the service's 256 descriptors.
loris 400 > "$tmp/loris.log" 2>&1 &
loris=$!; kill_on_exit+=("$loris")
sleep 2
cat "$tmp/loris.log"
echo "service descriptors during the attack: $(ls "/proc/$serve/fd" | wc -l) (limit 256)"
edge_once "tcp://127.0.0.1:$port" "during the attack" || fail=1
kill "$loris"; wait "$loris" 2>/dev/null
if t=$(metrics_within 5); then echo "ok   GET /metrics answered ${t} s after the attack stopped"
else echo "FAIL GET /metrics did not answer within 5 s after the attack stopped"; fail=1; fi
# 2. As many silent connections as the cap: the idle timeout (10 s) frees them.
loris 16 > "$tmp/loris2.log" 2>&1 &
loris=$!; kill_on_exit+=("$loris")
sleep 1
if t=$(metrics_within 20); then echo "ok   GET /metrics answered ${t} s into 16 silent connections (idle timeout 10 s)"
else echo "FAIL GET /metrics blocked ${t} s by 16 silent connections"; fail=1; fi
kill -0 "$serve" 2>/dev/null || { echo "FAIL the service died"; cat "$tmp/serve.1.log"; fail=1; }
[ "$fail" -eq 0 ]
