# Sourced by the tests/cli/serve_*.sh scripts: a fresh keys file and a
# service started in the background on an endpoint, waited for until ready.
# Needs $hsd, $data, $tmp; sets $serve (its pid).
# serve_test_init: for scripts with nothing else to clean up: $tmp, a keys
# file with key edge1, and an exit trap that kills $serve and the pids in
# $kill_on_exit. $serve_ulimit, when set,
# holds ulimit options for the service alone (e.g. "-n 256", "-v 4000000").

# new_keys FILE ID: one key line with a fresh 32-byte secret, mode 600.
new_keys() { (umask 077; echo "$2 $(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')" > "$1"); }

# start_serve ENDPOINT LOGNAME [extra hsd serve args...]
start_serve() {
  local ep=$1 log=$2; shift 2
  # shellcheck disable=SC2086  # $serve_ulimit is a list of options
  (if [ -n "${serve_ulimit:-}" ]; then ulimit ${serve_ulimit} || exit 1; fi
   exec "$hsd" serve --model "$data/pipeline/large" --bind "$ep" --keys "$tmp/keys" --threads 1 "$@") \
    > "$tmp/serve.$log.log" 2>&1 &
  serve=$!
  for _ in $(seq 200); do grep -qs "ready on" "$tmp/serve.$log.log" && return 0; sleep 0.05; done
  echo "service did not start"; cat "$tmp/serve.$log.log"; exit 1
}

# free_port: a loopback TCP port nobody listens on right now.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

serve_test_init() {
  tmp=$(mktemp -d); kill_on_exit=()
  trap 'for p in "${kill_on_exit[@]}"; do kill "$p" 2>/dev/null; done
        kill -9 "${serve:-0}" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
  export OMP_WAIT_POLICY=passive
  new_keys "$tmp/keys" edge1
}

# edge_once ENDPOINT WHAT: one small signed request (cloud k = 2 of 3); prints
# "ok   an edge client was served WHAT" or FAIL with its log; status 0/1.
edge_once() {
  if "$hsd" edge --cloud "$1" --model "$data/pipeline/edge" --key-file "$tmp/keys" \
       --key-id edge1 --split 2 --steps 3 --width 64 --height 64 --threads 1 --timeout-ms 8000 \
       --retries 1 --no-fallback -q -p "$2" -o "$tmp/out.png" > "$tmp/edge.log" 2>&1 &&
     grep -q "cloud k = 2" "$tmp/edge.log"; then
    echo "ok   an edge client was served $2"
  else
    echo "FAIL no edge client was served $2:"; cat "$tmp/edge.log"; return 1
  fi
}
