# Sourced by the tests/cli/serve_*.sh scripts: a fresh keys file and a
# service started in the background on an endpoint, waited for until ready.
# Needs $hsd, $data, $tmp; sets $serve (its pid). $serve_ulimit, when set,
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
  for _ in $(seq 200); do grep -q "ready on" "$tmp/serve.$log.log" && return 0; sleep 0.05; done
  echo "service did not start"; cat "$tmp/serve.$log.log"; exit 1
}

# free_port: a loopback TCP port nobody listens on right now.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
