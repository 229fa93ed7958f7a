#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this):
#   1. setup (system packages + oracle venv), 2. release build with
#   -Wall -Wextra -Werror (CUDA code compiled when nvcc exists), 3. ctest:
#   every test but `slow` (gpu tests report "skipped" without a GPU),
#   4. ASan+UBSan build running the unit and oracle tests, 5. a bounded
#   libFuzzer run of every fuzz target, 6. the README's main job (demo).
# Options: --quick skips 4-6. Env: FUZZ_SECONDS (default 30 per target).
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
[ "${1:-}" = "--quick" ] && quick=1
jobs=$(nproc)

scripts/setup.sh

echo "== build (Release, -Werror)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DHSD_WERROR=ON
cmake --build build -j "$jobs"

echo "== tests (all labels except slow)"
ctest --test-dir build -LE slow --output-on-failure -j "$jobs"

if ((quick)); then exit 0; fi

echo "== ASan + UBSan: unit and oracle tests"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DHSD_SANITIZE=ON \
      -DHSD_CUDA=OFF -DHSD_WERROR=ON
cmake --build build-asan -j "$jobs"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan -L 'unit|oracle' --output-on-failure -j "$jobs"

echo "== fuzz (${FUZZ_SECONDS:-30} s per target)"
scripts/fuzz.sh "${FUZZ_SECONDS:-30}"

echo "== main job (README)"
scripts/demo.sh --no-setup
