# Shared by the CLI test scripts (sourced): a scratch folder $tmp removed on
# exit, a background service in $srv_pid stopped on exit, ok/bad counters.
tmp=$(mktemp -d)
srv_pid=
cleanup() {
  if [ -n "$srv_pid" ]; then kill "$srv_pid" 2>/dev/null; wait "$srv_pid" 2>/dev/null; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
pass=0; fail=0
ok() { pass=$((pass+1)); echo "ok   $*"; }
bad() { fail=$((fail+1)); echo "FAIL $*"; }
# start_serve HSD MODEL [serve options...]: a loopback (ipc) `hsd serve` in
# the background ($srv_pid, stopped on exit) with one client key, edge-1, in
# $tmp/keys, at $ep; its output in $tmp/serve.log. Returns 0 once it is ready
# (within 20 s), 1 otherwise.
start_serve() {
  local bin=$1 mdl=$2; shift 2
  printf 'edge-1 %s\n' "$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')" > "$tmp/keys"
  chmod 600 "$tmp/keys"
  ep="ipc://$tmp/cloud.ipc"
  "$bin" serve --model "$mdl" --bind "$ep" --keys "$tmp/keys" "$@" > "$tmp/serve.log" 2>&1 &
  srv_pid=$!
  for _ in $(seq 200); do grep -q ready "$tmp/serve.log" && return 0; sleep 0.1; done
  return 1
}
# sdxl_edge_folder LARGE SMALL DIR: an SDXL edge pipeline in DIR: LARGE's
# text encoders, tokenizers and VAEs with SMALL's U-Net (as a KOALA folder
# ships with SDXL's text encoders and VAE), all as links.
sdxl_edge_folder() {
  mkdir "$3" || return 1
  for x in model_index.json scheduler text_encoder text_encoder_2 tokenizer tokenizer_2 vae vae_tiny; do
    ln -s "$(cd "$1" && pwd)/$x" "$3/$x"
  done
  ln -s "$(cd "$2" && pwd)/unet" "$3/unet"
}
# start_edge_http HSD [edge options...]: a loopback `hsd edge --http` daemon
# on a free port ($port) in the background ($edge_pid: the caller's EXIT
# trap stops it), its output in $tmp/edge.log; exits 1 unless it serves
# within 20 s.
start_edge_http() {
  local bin=$1; shift
  "$bin" edge --http 127.0.0.1:0 "$@" > "$tmp/edge.log" 2>&1 &
  edge_pid=$!
  for _ in $(seq 200); do grep -qs serving "$tmp/edge.log" && break; sleep 0.1; done
  port=$(grep -o 'http://127.0.0.1:[0-9]*' "$tmp/edge.log" | cut -d: -f3)
  [ -n "$port" ] || { echo "hsd edge --http did not start:"; cat "$tmp/edge.log"; exit 1; }
}
# sdxl_fit_lora PYTHON TEST_DATA OUT: tests/data/lora_sdxl's PEFT LoRA
# trimmed to the layers of the small SDXL U-Net (lora_subset.py) in OUT,
# so that it fits both SDXL U-Nets; exit 77 (skipped) without safetensors.
sdxl_fit_lora() {
  "$1" -c "import safetensors, numpy" 2>/dev/null || {
    echo "safetensors/numpy missing: skipped (scripts/setup.sh installs them)"; exit 77; }
  "$1" "$(dirname "$0")/lora_subset.py" "$2/lora_sdxl/peft.safetensors" \
    "$2/pipeline_sdxl/edge/unet/diffusion_pytorch_model.safetensors" "$3" ||
    { echo "lora_subset.py failed"; exit 1; }
}
# oracle_write PYTHON SCRIPT: a tests/oracle script that writes models at
# test time (too big to commit) into $m; its round-trip lines are echoed,
# its whole log on failure (then exit 1); exit 77 (skipped) without the
# oracle's Python packages.
oracle_write() {
  "$1" -c "import diffusers, transformers, safetensors" 2>/dev/null || {
    echo "diffusers/transformers missing: skipped (scripts/setup.sh installs them)"; exit 77; }
  m=$tmp/m
  if ! OMP_NUM_THREADS=1 "$1" "$2" "$m" > "$tmp/oracle.log" 2>&1; then
    echo "$(basename "$2") failed:"; cat "$tmp/oracle.log"; exit 1
  fi
  grep -E "round-trip|wrote" "$tmp/oracle.log"
}
