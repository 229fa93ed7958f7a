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
         fuzz_a1111_request)

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
exit "$failed"
