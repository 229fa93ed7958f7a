#!/usr/bin/env bash
# hsd status, the command a Kubernetes readiness probe execs
# (scripts/deploy/hsd-serve.k8s.yaml), against:
# - a real `hsd serve` on a tcp loopback port with a fresh keys file on the
#   tiny test models: exit 0, health, queue/active counts and one line per
#   device in text and JSON; its /metrics port answers GET /metrics 200 (the
#   manifest's liveness probe); after SIGTERM it is reported unreachable;
# - status_fake_serve (a stand-in that authenticates every request and
#   answers a chosen health): degraded -> 3, draining / no healthy device /
#   no device / ERROR reply / mismatched reply -> 1, a wrong secret -> 1 with
#   UNAUTHENTICATED;
# - the readiness probe command of scripts/deploy/hsd-serve.k8s.yaml (its
#   shell line, with this test's endpoint, keys and binary): ready on the
#   live service and on a degraded one, not ready when draining or gone;
# - nothing listening: exit 1 within the timeout;
# - bad flags: exit 2 with a message, before any network traffic.
#   status_probe.sh HSD FAKE_SERVE TEST_DATA
set -u
hsd=$1; fake=$2; data=$3
tmp=$(mktemp -d)
srv_pid=; fake_pid=
stop() {  # stop PID: SIGTERM, wait for it
  [ -n "$1" ] || return 0
  kill "$1" 2>/dev/null; wait "$1" 2>/dev/null
}
cleanup() { stop "$srv_pid"; stop "$fake_pid"; rm -rf "$tmp"; }
trap cleanup EXIT
export OMP_WAIT_POLICY=passive
pass=0; fail=0
ok() { pass=$((pass+1)); echo "ok   $*"; }
bad() { fail=$((fail+1)); echo "FAIL $*"; }
ms_now() { echo $(( $(date +%s%N) / 1000000 )); }

hex() { od -An -tx1 -N32 /dev/urandom | tr -d ' \n'; }
(umask 077
 printf 'probe %s\nedge-1 %s\n' "$(hex)" "$(hex)" > "$tmp/keys"
 printf 'probe %s\n' "$(hex)" > "$tmp/wrong"  # right id, wrong secret
 printf 'probe not-hex\n' > "$tmp/broken")
keys=(--key-file "$tmp/keys" --key-id probe)

# A free loopback port pair: hsd serve fails at once when a bind fails, so
# try a few random ports.
started=0
for _ in 1 2 3 4 5; do
  port=$(( 20000 + RANDOM % 20000 )); mport=$((port + 1))
  "$hsd" serve --model "$data/pipeline/large" --bind "tcp://127.0.0.1:$port" --keys "$tmp/keys" \
    --threads 1 --metrics-port "$mport" --grace-ms 1000 > "$tmp/serve.log" 2>&1 &
  srv_pid=$!
  for _ in $(seq 150); do
    grep -q "ready on" "$tmp/serve.log" && break
    kill -0 "$srv_pid" 2>/dev/null || break
    sleep 0.1
  done
  if grep -q "ready on" "$tmp/serve.log"; then started=1; break; fi
  wait "$srv_pid" 2>/dev/null; srv_pid=
done
[ $started -eq 1 ] || { echo "hsd serve did not start:"; cat "$tmp/serve.log"; exit 1; }
ep="tcp://127.0.0.1:$port"
echo "hsd serve on $ep, metrics on $mport"

# --- the real service ------------------------------------------------------
out=$("$hsd" status --endpoint "$ep" "${keys[@]}" --timeout-ms 5000 2>&1); rc=$?
if [ $rc -eq 0 ] && grep -q "^$ep: HEALTHY (health ok; hsd " <<<"$out" \
   && grep -q "queue: 0 waiting (limit 64), 0 active, max batch 16" <<<"$out" \
   && grep -q "devices: 1" <<<"$out" && grep -qE "^    device 0: .+ \(cpu, healthy, batch 0, memory [0-9]+/[0-9]+ MiB\)$" <<<"$out"; then
  ok "hsd serve: exit 0, health, queue, devices: $(tr '\n' '|' <<<"$out")"
else
  bad "hsd serve (rc=$rc): $out"
fi

out=$("$hsd" status --endpoint "$ep" "${keys[@]}" --json 2>"$tmp/err"); rc=$?
if [ $rc -eq 0 ] && [ ! -s "$tmp/err" ] && python3 -c '
import json, sys
j = json.loads(sys.stdin.read())
assert j["status"] == "healthy" and j["exit_code"] == 0, j
(e,) = j["endpoints"]
assert e["endpoint"] == sys.argv[1] and e["status"] == "healthy" and e["answered"], e
assert e["health"] == "ok" and e["server"].startswith("hsd ") and e["queue_limit"] == 64, e
assert e["queue_depth"] == 0 and e["active"] == 0 and e["max_batch"] == 16, e
(d,) = e["devices"]  # name: the backend description ("cpu:0", "cpu (1 threads)")
assert d["name"] and d["kind"] == "cpu" and d["healthy"] is True and d["batch"] == 0, d
assert 0 <= d["mem_used_mib"] <= d["mem_total_mib"] or d["mem_total_mib"] == 0, d
' "$ep" <<<"$out"; then
  ok "hsd serve --json: one object, status healthy, one cpu device"
else
  bad "hsd serve --json (rc=$rc): $out $(cat "$tmp/err")"
fi

# The manifest's liveness probe: GET /metrics on --metrics-port answers 200.
if exec 3<>"/dev/tcp/127.0.0.1/$mport"; then
  printf 'GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
  resp=$(timeout 5 cat <&3); exec 3>&-
  if head -1 <<<"$resp" | grep -q " 200" && grep -q "^hsd_queue_depth 0" <<<"$resp"; then
    ok "GET /metrics on the metrics port: 200, hsd_queue_depth 0"
  else
    bad "GET /metrics: $(head -3 <<<"$resp")"
  fi
else
  bad "cannot connect to the metrics port $mport"
fi

# Second key of the same file, and the same node given twice: each asked on its own.
out=$("$hsd" status --endpoint "$ep" --endpoint "$ep" --key-file "$tmp/keys" --key-id edge-1 2>&1); rc=$?
if [ $rc -eq 0 ] && [ "$(grep -c "^$ep: HEALTHY" <<<"$out")" -eq 2 ]; then
  ok "two endpoints, other key: two HEALTHY blocks"
else
  bad "two endpoints (rc=$rc): $out"
fi

# Bad keys, refused on this side with the reason, exit 1 (no traffic).
expect_rc() {  # expect_rc "what" RC "message part" args...
  local what=$1 want_rc=$2 want=$3; shift 3
  local out rc
  out=$("$hsd" status "$@" 2>&1); rc=$?
  if [ $rc -eq "$want_rc" ] && grep -qF -- "$want" <<<"$out"; then
    ok "$what: exit $rc: $(head -1 <<<"$out")"
  else
    bad "$what (rc=$rc, wanted $want_rc and '$want'): $out"
  fi
}
expect_rc "unknown key id" 1 "has no key 'nobody'" --endpoint "$ep" --key-file "$tmp/keys" --key-id nobody
expect_rc "missing keys file" 1 "cannot open keys file" --endpoint "$ep" --key-file "$tmp/none" --key-id probe
expect_rc "malformed keys file" 1 "broken:1" --endpoint "$ep" --key-file "$tmp/broken" --key-id probe

# A mixed fleet: one live node, one dead one -> 1 (the worst), both reported.
t0=$(ms_now)
out=$("$hsd" status --endpoint "$ep" --endpoint "tcp://127.0.0.1:$((port + 2))" "${keys[@]}" \
      --timeout-ms 800 --json 2>"$tmp/err"); rc=$?
ms=$(( $(ms_now) - t0 ))
if [ $rc -eq 1 ] && grep -q "no reply within 800 ms" "$tmp/err" && python3 -c '
import json, sys
j = json.loads(sys.stdin.read())
assert j["status"] == "unhealthy" and j["exit_code"] == 1, j
a, b = j["endpoints"]
assert a["status"] == "healthy" and b["status"] == "unhealthy" and not b["answered"], j
' <<<"$out"; then
  ok "live + dead endpoint: exit 1 after ${ms} ms, each reported"
else
  bad "live + dead endpoint (rc=$rc, ${ms} ms): $out $(cat "$tmp/err")"
fi

# The manifest's readiness probe, as kubelet would exec it, with this test's
# endpoint, keys and binary in place of the pod's.
root=$(cd "$(dirname "$0")/../.." && pwd)
probe_py=
for p in "$root/.venv/bin/python" python3; do
  if "$p" -c 'import yaml' 2>/dev/null; then probe_py=$p; break; fi
done
probe_sh=
if [ -n "$probe_py" ]; then
  probe_sh=$("$probe_py" -c '
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
(dep,) = [d for d in docs if d["kind"] == "Deployment"]
cmd = dep["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["exec"]["command"]
assert cmd[:2] == ["/bin/sh", "-c"], cmd
print(cmd[2])
' "$root/scripts/deploy/hsd-serve.k8s.yaml")
fi
readiness() {  # readiness ENDPOINT: the probe's exit status
  local line=${probe_sh//tcp:\/\/127.0.0.1:7100/$1}
  line=${line//\/etc\/hsd\/keys\/keys.txt/$tmp/keys}
  line=${line//\/usr\/local\/bin\/hsd/$hsd}
  sh -c "$line" >/dev/null 2>&1
}
if [ -n "$probe_sh" ]; then
  if readiness "$ep"; then ok "manifest readiness probe: ready on hsd serve"; else bad "manifest readiness probe on hsd serve: $probe_sh"; fi
else
  echo "skip manifest readiness probe: no Python with PyYAML (scripts/setup.sh)"
fi

# --- the stand-in: health states, auth, bad replies ----------------------------
fep="ipc://$tmp/fake.ipc"
fake_mode() {
  stop "$fake_pid"; fake_pid=
  "$fake" "$fep" "$tmp/keys" "$1" > "$tmp/fake.log" 2>&1 &
  fake_pid=$!
  for _ in $(seq 100); do grep -q ready "$tmp/fake.log" && return 0; sleep 0.05; done
  echo "status_fake_serve did not start: $(cat "$tmp/fake.log")"; exit 1
}
fake_case() {  # fake_case MODE RC "stdout+stderr part" [extra args]
  local mode=$1 want_rc=$2 want=$3; shift 3
  fake_mode "$mode"
  local out rc
  out=$("$hsd" status --endpoint "$fep" "${keys[@]}" --timeout-ms 3000 "$@" 2>&1); rc=$?
  if [ $rc -eq "$want_rc" ] && grep -qF -- "$want" <<<"$out"; then
    ok "fake $mode: exit $rc: $(tr '\n' '|' <<<"$out")"
  else
    bad "fake $mode (rc=$rc, wanted $want_rc and '$want'): $out"
  fi
}
fake_case ok 0 "device 1: cuda:1 H100 (cuda, healthy, batch 5, memory 20000/81559 MiB)"
fake_case degraded 3 "DEGRADED: 1 of 2 devices healthy"
fake_case alldown 1 "UNHEALTHY: no healthy device (0 of 2)"
fake_case draining 1 "draining (shutting down)"
fake_case nodevice 1 "reports no devices"
fake_case wrongid 1 "not ours"
fake_case busy 1 "refused the request: BUSY (8): queue full"
fake_case degraded 3 '"status": "degraded"' --json
if [ -n "$probe_sh" ]; then
  fake_mode degraded
  if readiness "$fep"; then ok "manifest readiness probe: degraded counts as ready"; else bad "manifest readiness probe: degraded not ready"; fi
  fake_mode draining
  if ! readiness "$fep"; then ok "manifest readiness probe: draining is not ready"; else bad "manifest readiness probe: draining ready"; fi
  fake_mode degraded
fi
out=$("$hsd" status --endpoint "$fep" --key-file "$tmp/wrong" --key-id probe 2>&1); rc=$?
if [ $rc -eq 1 ] && grep -q "UNAUTHENTICATED" <<<"$out"; then
  ok "wrong secret, service that checks STATUS auth: exit 1: $out"
else
  bad "wrong secret vs fake (rc=$rc): $out"
fi
# Both at once: the worst (1) wins over degraded (3).
out=$("$hsd" status --endpoint "$fep" --endpoint "tcp://127.0.0.1:$((port + 2))" "${keys[@]}" \
      --timeout-ms 500 2>&1); rc=$?
if [ $rc -eq 1 ] && grep -q "DEGRADED" <<<"$out" && grep -q "no reply" <<<"$out"; then
  ok "degraded + dead: exit 1"
else
  bad "degraded + dead (rc=$rc): $out"
fi
stop "$fake_pid"; fake_pid=

# The real service with a wrong secret. docs/protocol.md §5.4: a service
# with a keys file requires a signed STATUS.
out=$("$hsd" status --endpoint "$ep" --key-file "$tmp/wrong" --key-id probe 2>&1); rc=$?
if [ $rc -eq 1 ] && grep -q "UNAUTHENTICATED" <<<"$out"; then
  ok "wrong secret vs hsd serve: exit 1: $out"
else
  bad "wrong secret vs hsd serve answered or failed otherwise (rc=$rc): $out"
fi

# --- nothing listening ---------------------------------------------------------
stop "$srv_pid"; srv_pid=
for to in 300 1500; do
  t0=$(ms_now)
  out=$("$hsd" status --endpoint "$ep" "${keys[@]}" --timeout-ms $to 2>&1); rc=$?
  ms=$(( $(ms_now) - t0 ))
  if [ $rc -eq 1 ] && grep -q "no reply within $to ms" <<<"$out" && [ $ms -ge $to ] \
     && [ $ms -lt $((to + 1500)) ]; then
    ok "nothing listening, --timeout-ms $to: exit 1 after $ms ms: $out"
  else
    bad "nothing listening, --timeout-ms $to (rc=$rc, $ms ms): $out"
  fi
done

if [ -n "$probe_sh" ]; then
  if ! readiness "$ep"; then ok "manifest readiness probe: not ready when nothing listens"; else bad "manifest readiness probe: ready with nothing listening"; fi
fi

# --- usage errors: exit 2 with a message -------------------------------------------
expect_rc "no arguments" 2 "missing --endpoint --key-file --key-id"
expect_rc "no key id" 2 "missing --key-id" --endpoint "$ep" --key-file "$tmp/keys"
expect_rc "no endpoint" 2 "missing --endpoint" "${keys[@]}"
expect_rc "http endpoint" 2 "expects tcp://HOST:PORT or ipc:///PATH" --endpoint http://x:1 "${keys[@]}"
expect_rc "tcp without port" 2 "host and port" --endpoint tcp://localhost "${keys[@]}"
expect_rc "port out of range" 2 "port must be a number" --endpoint tcp://localhost:70000 "${keys[@]}"
expect_rc "bind wildcard" 2 "'*' is for binding" --endpoint 'tcp://*:7100' "${keys[@]}"
expect_rc "empty ipc path" 2 "needs a socket path" --endpoint ipc:// "${keys[@]}"
expect_rc "timeout 0" 2 "--timeout-ms expects an integer in [1, 3600000], got '0'" --endpoint "$ep" "${keys[@]}" --timeout-ms 0
expect_rc "timeout not a number" 2 "got 'soon'" --endpoint "$ep" "${keys[@]}" --timeout-ms soon
expect_rc "bad key id" 2 "key ids are 1..31 characters" --endpoint "$ep" --key-file "$tmp/keys" --key-id 'a b'
expect_rc "unknown flag" 2 "unrecognized option" --endpoint "$ep" "${keys[@]}" --verbose
expect_rc "stray argument" 2 "unexpected argument 'extra'" --endpoint "$ep" "${keys[@]}" extra
many=(); for i in $(seq 17); do many+=(--endpoint "tcp://127.0.0.1:$((30000 + i))"); done
expect_rc "17 endpoints" 2 "at most 16 --endpoint" "${many[@]}" "${keys[@]}"
if "$hsd" status --help | grep -q "^  3  DEGRADED" && "$hsd" help | grep -q "^  status "; then
  ok "--help documents exit status 3; hsd help lists status"
else
  bad "help"
fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
