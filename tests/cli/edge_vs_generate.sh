#!/usr/bin/env bash
# hsd edge against hsd serve on ipc:// (loopback only), compared with the
# in-process hybrid:
# - `hsd edge --model EDGE --split k` via `hsd serve --model LARGE` gives the
#   pixels (and the compressed IDAT bytes) of `hsd generate --model LARGE
#   --edge-model EDGE --split k`, for several samplers, k, CFG on/off, the
#   tiny VAE and a k range (the service picks k; the PNG says which). The
#   files differ only in their parameter text chunk (cloud k, endpoint,
#   device-ms), so pixels and IDAT are compared, not whole files;
# - no service: hsd edge says so, generates locally (= hsd generate --model
#   EDGE), exits 0 and marks the PNG "fallback":"local"; --no-fallback exits 1;
# - a wrong key: UNAUTHENTICATED at once, no file; bad arguments fail before
#   any network traffic, no file.
#   edge_vs_generate.sh HSD PNGCMP TEST_DATA
set -u
hsd=$1; pngcmp=$2; data=$3
large=$data/pipeline/large; edge=$data/pipeline/edge
# shellcheck source=harness.sh
. "$(dirname "$0")/harness.sh"

hex() { od -An -tx1 -N32 /dev/urandom | tr -d ' \n'; }
printf 'edge-1 %s\nedge-2 %s\n' "$(hex)" "$(hex)" > "$tmp/keys"
printf 'edge-1 %s\n' "$(hex)" > "$tmp/wrong"  # right id, wrong secret
chmod 600 "$tmp/keys" "$tmp/wrong"
ep="ipc://$tmp/cloud.ipc"

"$hsd" serve --model "$large" --bind "$ep" --keys "$tmp/keys" --threads 2 > "$tmp/serve.log" 2>&1 &
srv_pid=$!
for _ in $(seq 100); do grep -q ready "$tmp/serve.log" && break; sleep 0.1; done
grep -q ready "$tmp/serve.log" || { echo "hsd serve did not start:"; cat "$tmp/serve.log"; exit 1; }

common=(-p "a lighthouse at dusk" -n "blurry" --width 64 --height 64 --seed 11 --threads 2 -q)
cloud=(--cloud "$ep" --model "$edge" --key-file "$tmp/keys" --key-id edge-1)

# same_as_generate NAME "edge split args" GENERATE_K [other args...]
# GENERATE_K "auto": the k the edge's PNG reports (a --split-range run).
same_as_generate() {
  local name=$1 split=$2 k=$3; shift 3
  local out rc
  rm -f "$tmp/e.png" "$tmp/g.png"
  # shellcheck disable=SC2086
  out=$("$hsd" edge "${cloud[@]}" "${common[@]}" $split "$@" -o "$tmp/e.png" 2>&1); rc=$?
  if [ $rc -ne 0 ] || [ ! -s "$tmp/e.png" ]; then bad "$name: hsd edge rc=$rc: $out"; return; fi
  if grep -q '"fallback"' "$tmp/e.png"; then bad "$name: fell back locally: $out"; return; fi
  local used
  used=$(grep -ao '"cloud_k":[0-9]*' "$tmp/e.png" | head -1 | cut -d: -f2)
  [ "$k" = auto ] && k=$used
  if [ "$used" != "$k" ]; then bad "$name: cloud_k '$used', expected $k"; return; fi
  if ! "$hsd" generate --model "$large" --edge-model "$edge" --split "$k" "${common[@]}" "$@" \
       -o "$tmp/g.png" >/dev/null 2>&1; then bad "$name: hsd generate failed"; return; fi
  local cmp
  cmp=$("$pngcmp" "$tmp/e.png" "$tmp/g.png"); rc=$?
  cmp=$(tr '\n' ' ' <<<"$cmp")
  if [ $rc -eq 0 ]; then
    ok "$name: edge (k=$k) == generate --split $k: $cmp| $out"
  else
    bad "$name: edge differs from generate --split $k: $cmp"
  fi
}

same_as_generate "dpmpp-2m k=3 of 6" "--split 3" 3 --steps 6
same_as_generate "euler-a k=0" "--split 0" 0 --steps 5 --sampler euler-a
same_as_generate "pndm k=N" "--split 6" 6 --steps 6 --sampler pndm
same_as_generate "ddim cfg off" "--split 2" 2 --steps 5 --sampler ddim --cfg 1
same_as_generate "euler tiny VAE" "--split 2" 2 --steps 4 --sampler euler --vae tiny
same_as_generate "k range 1:4" "--split-range 1:4" auto --steps 5
saved=("${cloud[@]}")
cloud=(--cloud "$ep" --model "$edge" --key-file "$tmp/keys" --key-id edge-2)
same_as_generate "second key of the file" "--split 2" 2 --steps 4
cloud=("${saved[@]}")

# Wrong secret: refused at once, the service's reason shown, no file.
rm -f "$tmp/e.png"
out=$("$hsd" edge --cloud "$ep" --model "$edge" --key-file "$tmp/wrong" --key-id edge-1 \
      "${common[@]}" --steps 4 --split 2 -o "$tmp/e.png" 2>&1); rc=$?
if [ $rc -eq 1 ] && grep -q UNAUTHENTICATED <<<"$out" && [ ! -e "$tmp/e.png" ]; then
  ok "wrong key: $out"
else
  bad "wrong key (rc=$rc): $out"
fi

# The service must still serve after that.
same_as_generate "still serving" "--split 1" 1 --steps 3

# No service: local fallback, said on stderr and in the PNG, exit 0.
kill "$srv_pid"; wait "$srv_pid" 2>/dev/null; srv_pid=
rm -f "$tmp/e.png" "$tmp/g.png"
t0=$(date +%s%N)
out=$("$hsd" edge "${cloud[@]}" "${common[@]}" --steps 4 --split 2 --deadline-ms 800 \
      --timeout-ms 300 -o "$tmp/e.png" 2>&1); rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
"$hsd" generate --model "$edge" "${common[@]}" --steps 4 -o "$tmp/g.png" >/dev/null 2>&1
if [ $rc -eq 0 ] && grep -q "generating locally" <<<"$out" && grep -q '"fallback":"local"' "$tmp/e.png" \
   && "$pngcmp" "$tmp/e.png" "$tmp/g.png" >/dev/null; then
  ok "no service: local fallback in ${ms} ms, == generate --model EDGE: $out"
else
  bad "no service (rc=$rc, ${ms} ms): $out"
fi
rm -f "$tmp/e.png"
out=$("$hsd" edge "${cloud[@]}" "${common[@]}" --steps 4 --split 2 --deadline-ms 500 \
      --timeout-ms 200 --no-fallback -o "$tmp/e.png" 2>&1); rc=$?
if [ $rc -eq 1 ] && grep -q "no-fallback" <<<"$out" && [ ! -e "$tmp/e.png" ]; then
  ok "no service, --no-fallback: $out"
else
  bad "no service, --no-fallback (rc=$rc): $out"
fi

# A service that comes up while the edge is waiting: the request gets through
# (nanomsg connects in the background; the edge retries until its deadline).
rm -f "$tmp/e.png"
"$hsd" edge "${cloud[@]}" "${common[@]}" --steps 4 --split 2 --deadline-ms 20000 \
  --timeout-ms 1000 --no-fallback -o "$tmp/e.png" > "$tmp/late.log" 2>&1 &
edge_pid=$!
sleep 0.7
"$hsd" serve --model "$large" --bind "$ep" --keys "$tmp/keys" --threads 2 > "$tmp/serve.log" 2>&1 &
srv_pid=$!
wait "$edge_pid"; rc=$?
if [ $rc -eq 0 ] && grep -q '"cloud_k":2' "$tmp/e.png"; then
  ok "service started late: $(cat "$tmp/late.log")"
else
  bad "service started late (rc=$rc): $(cat "$tmp/late.log")"
fi
kill "$srv_pid"; wait "$srv_pid" 2>/dev/null; srv_pid=

# A service without keys (--no-auth) takes unsigned requests.
"$hsd" serve --model "$large" --bind "$ep" --no-auth --threads 2 > "$tmp/serve.log" 2>&1 &
srv_pid=$!
for _ in $(seq 100); do grep -q ready "$tmp/serve.log" && break; sleep 0.1; done
cloud=(--cloud "$ep" --model "$edge")
same_as_generate "unsigned, service --no-auth" "--split 2" 2 --steps 4
cloud=("${saved[@]}")
kill "$srv_pid"; wait "$srv_pid" 2>/dev/null; srv_pid=

# Bad arguments: refused before any network traffic or compute, no file.
expect_fail() {  # expect_fail "what" "message part" args...
  local what=$1 want=$2; shift 2
  local out rc
  out=$("$hsd" edge "$@" 2>&1); rc=$?
  if [ $rc -ne 0 ] && grep -qF -- "$want" <<<"$out" && [ ! -e "$tmp/x.png" ]; then
    ok "$what: $(head -1 <<<"$out")"
  else
    bad "$what (rc=$rc): $out"
  fi
}
base=(--cloud "$ep" --model "$edge" --key-file "$tmp/keys" --key-id edge-1 -p "a cat"
      --width 64 --height 64 --steps 4 -o "$tmp/x.png")
expect_fail "no split" "--split K" "${base[@]}"
expect_fail "both split forms" "exactly one" "${base[@]}" --split 2 --split-range 1:2
expect_fail "k > steps" "at most --steps" "${base[@]}" --split 5
expect_fail "bad range" "--split-range expects" "${base[@]}" --split-range 3:1
expect_fail "bad endpoint" "--cloud expects" --cloud "http://x" --model "$edge" -p a --split 1 -o "$tmp/x.png"
expect_fail "no cloud" "--cloud, --model" --model "$edge" -p a --split 1 -o "$tmp/x.png"
expect_fail "key id without file" "go together" --cloud "$ep" --model "$edge" -p a --split 1 --key-id edge-1 -o "$tmp/x.png"
expect_fail "unknown key id" "no key 'edge-9'" --cloud "$ep" --model "$edge" -p a --split 1 --key-file "$tmp/keys" --key-id edge-9 -o "$tmp/x.png"
expect_fail "missing keys file" "cannot open keys file" --cloud "$ep" --model "$edge" -p a --split 1 --key-file "$tmp/nothing" --key-id edge-1 -o "$tmp/x.png"
expect_fail "size not a multiple" "multiples of" "${base[@]}" --split 2 --width 72
expect_fail "invalid UTF-8" "UTF-8" "${base[@]}" --split 2 -p $'bad \xff'
expect_fail "clip skip too deep" "clip skip" "${base[@]}" --split 2 --clip-skip 9
expect_fail "unwritable output" "cannot write" "${base[@]}" --split 2 -o "$tmp/no/dir/x.png"
expect_fail "no edge model" "no such" --cloud "$ep" --model "$tmp/none" -p a --split 1 -o "$tmp/x.png"
if "$hsd" edge --help | grep -q -- "--split-range" && "$hsd" help | grep -q "^  edge"; then
  ok "--help documents the options; hsd help lists edge"
else
  bad "help"
fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
