#!/usr/bin/env bash
# Issue 15, finding 2: unauthenticated peers that announce big messages and
# stall. nanomsg reserves the size a peer announces in its 8-byte length
# prefix before the bytes arrive, up to the receive limit; it was 64 MiB and
# 25 stalled connections aborted a service under `ulimit -v`
# (chunkref.c:55). The limit is now the largest legal request
# (HSD_WIRE_MAX_REQUEST, 33,744 bytes, or less by the keys' max_bytes):
# a larger announcement drops the connection before any allocation, and a
# stalled legal-sized one holds at most that much.
#   serve_stalled.sh HSD TEST_DATA
# The service runs under ulimit -v of its idle size + 768 MiB; 40
# connections announce 60 MiB, 200 announce 33,000 bytes; all stall. It
# must stay up, serve an edge client, and grow RSS by < 64 MiB (200 x 33 KB
# = 6.6 MB reserved, plus nanomsg's per-connection state). Loopback only; ~15 s.
set -u
hsd=$1; data=$2
. "$(dirname "$0")/serve_lib.sh"
serve_test_init
port=$(free_port)
# The idle size first, to set the address-space limit above it.
start_serve "tcp://127.0.0.1:$port" probe
vm=$(awk '/VmPeak/ {print $2}' "/proc/$serve/status")
kill -9 "$serve"; wait "$serve" 2>/dev/null
serve_ulimit="-v $((vm + 768 * 1024))"
start_serve "tcp://127.0.0.1:$port" 1
rss0=$(awk '/VmRSS/ {print $2}' "/proc/$serve/status")
echo "hsd serve under ulimit -v $((vm / 1024 + 768)) MiB (idle VmPeak $((vm / 1024)) MiB), RSS $((rss0 / 1024)) MiB"

# SP over TCP (nanomsg sp-tcp): an 8-byte handshake, then each message as
# an 8-byte big-endian length and the bytes. A REQ peer (protocol 48).
python3 - "$port" > "$tmp/atk.log" 2>&1 <<'PY' &
import socket, struct, sys, time
port = int(sys.argv[1])
held = []
for size, n in ((60 << 20, 40), (33000, 200)):
    for _ in range(n):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            s.sendall(b"\x00SP\x00\x00\x30\x00\x00" + struct.pack(">Q", size) + b"HSDW")
            held.append(s)
        except OSError:
            pass
print(f"{len(held)} stalled connections", flush=True)
time.sleep(60)
PY
atk=$!; kill_on_exit+=("$atk")
sleep 3
cat "$tmp/atk.log"
fail=0
edge_once "tcp://127.0.0.1:$port" "beside the stalled connections" || fail=1
if kill -0 "$serve" 2>/dev/null; then
  rss1=$(awk '/VmRSS/ {print $2}' "/proc/$serve/status")
  grow=$(( (rss1 - rss0) / 1024 ))
  echo "RSS grew by $grow MiB (bound 64 MiB)"
  [ "$grow" -lt 64 ] || { echo "FAIL RSS grew past the bound"; fail=1; }
else
  echo "FAIL the service died:"; tail -5 "$tmp/serve.1.log"; fail=1
fi
[ "$fail" -eq 0 ]
