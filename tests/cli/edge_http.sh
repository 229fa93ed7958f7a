#!/usr/bin/env bash
# `hsd edge --http` driven by real clients, on loopback only:
#   - hsd serve (ipc:// in a temp dir, signed requests) + hsd edge --http
#     127.0.0.1:0 (a free port) with the cloud: tests/cli/edge_http_webuiapi.py
#     (the `webuiapi` package from PyPI, unmodified) checks txt2img against
#     `hsd generate --split k`, /progress, /interrupt, options and bad requests;
#   - a second daemon whose cloud never answers (local fallback, a queue of 1);
#   - with CHROMIUM set (tests/cli/edge_http_page.py): headless Chromium loads
#     /, submits a prompt, sees the progress bar and then the image; the
#     screenshot stays in ARTIFACTS.
#   edge_http.sh HSD TEST_DATA PYTHON ARTIFACTS [page]
set -u
hsd=$1; data=$2; py=$3; art=$4; what=${5:-api}
large=$data/pipeline/large; edge=$data/pipeline/edge
here=$(cd "$(dirname "$0")" && pwd)
if ! "$py" -c 'import webuiapi, websocket, numpy, PIL' 2>/dev/null; then
  echo "missing Python packages (webuiapi, websocket-client, numpy, pillow): run scripts/setup.sh"
  exit 1
fi
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
export OMP_WAIT_POLICY=PASSIVE
# Thread counts decide how sums split, so the images compared come from one
# count everywhere: --threads 1 for hsd serve, both daemons and `hsd
# generate`. (Their worker threads must honour it: hsd_cpu_blas_threads.)

hex() { od -An -tx1 -N32 /dev/urandom | tr -d ' \n'; }
# max_steps=1000: the interrupt check asks for 1000 steps, over the default
# per-key limit (docs/protocol.md §4 "Default limits").
printf 'edge-1 %s max_steps=1000\n' "$(hex)" > "$tmp/keys"
chmod 600 "$tmp/keys"
ep="ipc://$tmp/cloud.ipc"

"$hsd" serve --model "$large" --bind "$ep" --keys "$tmp/keys" --threads 1 > "$tmp/serve.log" 2>&1 &
pids+=($!)
# start_edge LOG args...: a daemon on a free port, which goes into $got_port
# (not printed: a $(...) subshell would keep the pid from the cleanup).
start_edge() {
  local log=$1; shift
  "$hsd" edge --http 127.0.0.1:0 --model "$edge" --threads 1 "$@" > "$log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do grep -qs serving "$log" && break; sleep 0.1; done
  got_port=$(grep -o 'http://127.0.0.1:[0-9]*' "$log" | cut -d: -f3)
}
for _ in $(seq 100); do grep -qs ready "$tmp/serve.log" && break; sleep 0.1; done
grep -q ready "$tmp/serve.log" || { echo "hsd serve did not start:"; cat "$tmp/serve.log"; exit 1; }
start_edge "$tmp/edge.log" --cloud "$ep" --key-file "$tmp/keys" --key-id edge-1 --split 2
port=$got_port
# No cloud: nothing listens on this endpoint; the edge gives up fast.
start_edge "$tmp/edge_local.log" --cloud "ipc://$tmp/nobody.ipc" --split 2 \
  --timeout-ms 200 --deadline-ms 400 --retries 1 --queue-limit 1
port_local=$got_port
if [ -z "$port" ] || [ -z "$port_local" ]; then
  echo "hsd edge --http did not start:"; cat "$tmp/edge.log" "$tmp/edge_local.log"; exit 1
fi

if ! "$hsd" edge --help | grep -q -- "--http \[ADDR:PORT\]"; then
  echo "FAIL hsd edge --help does not document --http"; exit 1
fi
mkdir -p "$art"
if [ "$what" = page ]; then
  "$py" "$here/edge_http_page.py" "$port" "$art"
else
  "$py" "$here/edge_http_webuiapi.py" --hsd "$hsd" --large "$large" --edge "$edge" \
    --port "$port" --port-local "$port_local" --split 2 --tmp "$tmp"
fi
rc=$?
if [ $rc -ne 0 ]; then
  echo "--- edge log"; tail -20 "$tmp/edge.log"; echo "--- serve log"; tail -20 "$tmp/serve.log"
fi
# Both daemons stop cleanly on SIGTERM.
if [ ${#pids[@]} -ne 3 ]; then echo "FAIL expected 3 processes, have ${#pids[@]}"; rc=1; fi
for p in "${pids[@]:1}"; do kill -TERM "$p"; done
for p in "${pids[@]:1}"; do
  wait "$p"; st=$?
  if [ $st -ne 0 ]; then echo "FAIL hsd edge --http exited $st on SIGTERM"; rc=1; fi
done
[ $rc -eq 0 ] && echo "ok   both daemons stopped on SIGTERM with status 0"
pids=("${pids[0]}")
exit $rc
