#!/usr/bin/env bash
# Fuzzes every parser of untrusted bytes with libFuzzer + ASan + UBSan.
#
#   scripts/fuzz.sh [SECONDS]     # default 60 seconds per target
#
# Configures build-fuzz/ with clang-14 (-DHSD_FUZZ=ON -DHSD_CUDA=OFF), builds
# the harnesses in tests/fuzz/ and runs each for SECONDS on a scratch copy of
# its seed corpus tests/fuzz/corpus/<name>/ (new inputs land in the copy, so
# the committed corpus stays small and reviewed). Exit status 1 if any target
# crashed, leaked or hit undefined behaviour; the offending input is printed
# and kept under build-fuzz/fuzz-run/<target>/. Reproduce one with
#   build-fuzz/tests/<target> <crash-file>
# and, once fixed, copy a minimised input (<target> -minimize_crash=1) into
# the seed corpus as a regression case (ctest -L fuzz replays it).
# Needs: clang-14, libclang-rt-14-dev (libFuzzer), libomp-14-dev.
set -euo pipefail

secs=${1:-60}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$root/build-fuzz
targets=(fuzz_safetensors fuzz_unet_config fuzz_sampler_state fuzz_tokenizer fuzz_wire fuzz_edge_result
         fuzz_a1111_request fuzz_ldm_names fuzz_prompt_emphasis
         fuzz_weights_index fuzz_lora_keys)

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_C_COMPILER=clang-14 \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHSD_FUZZ=ON -DHSD_CUDA=OFF >/dev/null
cmake --build "$build" --target "${targets[@]}"

failed=0
for t in "${targets[@]}"; do
    name=${t#fuzz_}
    work=$build/fuzz-run/$t
    rm -rf "$work"
    mkdir -p "$work/corpus"
    cp -r "$root/tests/fuzz/corpus/$name/." "$work/corpus/"
    echo "== $t: ${secs}s on a copy of tests/fuzz/corpus/$name"
    # `|| rc=$?` keeps set -e from stopping before the crash is reported.
    rc=0
    "$build/tests/$t" -max_total_time="$secs" -print_final_stats=1 \
        -artifact_prefix="$work/" "$work/corpus" >"$work/log" 2>&1 || rc=$?
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done )' "$work/log" || true
    if [ "$rc" -ne 0 ]; then
        failed=1
        echo "!! $t failed (exit $rc); last lines of $work/log:"
        tail -n 40 "$work/log"
        for f in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*; do
            [ -e "$f" ] && echo "!! crash input: $f"
        done
    fi
done
# The Python client's decoders (tests/fuzz/fuzz_pyclient.py, atheris from
# .venv) on the corpora of the C decoders of the same bytes.
py=$root/.venv/bin/python
work=$build/fuzz-run/fuzz_pyclient
if "$py" -c 'import atheris, numpy' 2>/dev/null; then
    rm -rf "$work"
    mkdir -p "$work/corpus"
    echo "== fuzz_pyclient: ${secs}s on the wire, edge_result and sampler_state corpora"
    # New inputs go to the first folder only; the seed corpora are read.
    rc=0
    PYTHONPATH=$root/clients/python/src "$py" "$root/tests/fuzz/fuzz_pyclient.py" \
        -max_total_time="$secs" -artifact_prefix="$work/" "$work/corpus" \
        "$root"/tests/fuzz/corpus/{wire,edge_result,sampler_state} >"$work/log" 2>&1 || rc=$?
    grep -E '^(stat::number_of_executed_units|Done )' "$work/log" || true
    if [ "$rc" -ne 0 ]; then
        failed=1
        echo "!! fuzz_pyclient failed (exit $rc); last lines of $work/log:"
        tail -n 40 "$work/log"
    fi
elif [ "$(uname -m)" = x86_64 ]; then
    echo "!! fuzz_pyclient: .venv lacks atheris (scripts/setup.sh installs it)"
    failed=1
else
    echo "SKIP fuzz_pyclient: atheris ships x86-64 wheels only"
fi
exit "$failed"
