# Sourced by the tests/cli/serve_*.sh scripts: a fresh keys file and a
# service started in the background on an endpoint, waited for until ready.
# Needs $hsd, $data, $tmp; sets $serve (its pid).

# new_keys FILE ID: one key line with a fresh 32-byte secret, mode 600.
new_keys() { (umask 077; echo "$2 $(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')" > "$1"); }

# start_serve ENDPOINT LOGNAME [extra hsd serve args...]
start_serve() {
  local ep=$1 log=$2; shift 2
  "$hsd" serve --model "$data/pipeline/large" --bind "$ep" --keys "$tmp/keys" --threads 1 "$@" \
    > "$tmp/serve.$log.log" 2>&1 &
  serve=$!
  for _ in $(seq 200); do grep -q "ready on" "$tmp/serve.$log.log" && return 0; sleep 0.05; done
  echo "service did not start"; cat "$tmp/serve.$log.log"; exit 1
}
