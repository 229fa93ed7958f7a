#!/usr/bin/env bash
# Packs what bench/device-check.sh runs on a GPU machine whose image has the
# CUDA toolkit and PyTorch but not this project's Debian packages (the device
# tool's 'cuda' image: OpenBLAS, ICU, nanomsg, ... are missing, so the project
# cannot be configured there): the `hsd` binary, bench_kernels and every test
# labelled gpu, with the host libraries they load, and OpenAI's CLIP vocab
# (the SD 1.5 tokenizer of gpu_parity.py --pipeline), into DEST/bundle.tar.xz
# (xz: OpenBLAS and ICU's data are 68 MB as files, 12 MB packed; the device
# call carries at most 64 MiB with the working tree).
#
#   bench/bundle-device.sh --build [BUILD] [DEST]   defaults: build-bundle, .device-bundle
#       configures and builds BUILD for the GPU machine first: CUDA on, sm_90
#       only (H100/H200), HSD_NATIVE off with -march=x86-64-v3 (AVX2/FMA: a
#       -march=native build from this machine can die of SIGILL on another
#       CPU), targets hsd, bench_kernels and the gpu-labelled tests
#   bench/bundle-device.sh [BUILD] [DEST]           defaults: build, .device-bundle
#       packs an existing build (refused if it was built with -march=native,
#       unless HSD_BUNDLE_ALLOW_NATIVE=1)
# then carry DEST (and the wheels of bench/fetch-device-wheels.sh) and run
#   HSD_PREBUILT=DEST bench/device-check.sh
#
# In the tarball: bin/ (the executables at their paths inside BUILD, so
# relative lookups still work), lib/ (host libraries), assets/ (CLIP vocab and
# its licence), gpu-tests.tsv (name, timeout, executable, arguments of each
# gpu test, from ctest), MANIFEST (commit, flags, the build's absolute source
# and binary paths: the tests have them compiled in, and device-check.sh
# links them to the copies there). MANIFEST.txt beside the tarball is the same.
# Not bundled: glibc, libstdc++/libgcc_s (the image is newer than Debian 12's),
# the driver (libcuda), cuBLAS/cuBLASLt/cuDNN/NCCL/NVRTC (NCCL alone is 218 MB;
# the image's toolkit and PyTorch's nvidia wheels have them, and
# device-check.sh finds them).
set -euo pipefail
cd "$(dirname "$0")/.."
do_build=0
if [ "${1:-}" = "--build" ]; then do_build=1; shift; fi
if ((do_build)); then build=${1:-build-bundle}; else build=${1:-build}; fi
dest=${2:-.device-bundle}

if ((do_build)); then
  gen=(); command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
  echo "bundle-device: configuring $build (CUDA sm_90, -march=x86-64-v3, Release)"
  cmake -S . -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DHSD_CUDA=ON -DHSD_NATIVE=OFF \
    -DCMAKE_C_FLAGS=-march=x86-64-v3 -DCMAKE_CUDA_ARCHITECTURES=90 -DHSD_WERROR=OFF >/dev/null
  mapfile -t gpu_tests < <(ctest --test-dir "$build" -L gpu -N | sed -n 's/^ *Test *#[0-9]*: *//p')
  echo "bundle-device: building hsd bench_kernels ${gpu_tests[*]}"
  cmake --build "$build" -j "$(nproc)" --target hsd bench_kernels "${gpu_tests[@]}" > "$build/bundle-build.log" 2>&1 ||
    { tail -30 "$build/bundle-build.log"; echo "bundle-device: build failed (log: $build/bundle-build.log)" >&2; exit 1; }
fi

cache="$build/CMakeCache.txt"
[ -f "$cache" ] || { echo "bundle-device: $build is not a configured build (no CMakeCache.txt)" >&2; exit 1; }
cachev() { sed -n "s/^$1:[A-Z]*=//p" "$cache" | head -1; }
if [ "$(cachev HSD_NATIVE)" != "OFF" ] && [ -z "${HSD_BUNDLE_ALLOW_NATIVE:-}" ]; then
  echo "bundle-device: $build was built with -march=native (HSD_NATIVE=ON): its code may not run on" \
       "the GPU machine's CPU. Use --build (or HSD_BUNDLE_ALLOW_NATIVE=1)." >&2
  exit 1
fi
archs=$(cachev CMAKE_CUDA_ARCHITECTURES)
case " ${archs//;/ } " in *" 90 "*|*" 90a "*|*" 90-real "*) ;;
  *) echo "bundle-device: $build has CUDA archs '$archs', not 90 (H100/H200)" >&2; exit 1 ;; esac
src_dir=$(cachev CMAKE_HOME_DIRECTORY)
bin_dir=$(cd "$build" && pwd -P)

stage=$(mktemp -d "${TMPDIR:-/tmp}/hsd-bundle.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/lib" "$stage/assets"

# The executables: hsd, bench_kernels, every gpu-labelled test (ctest's list,
# so tests added later come along) and their commands.
put() {  # put ABS_PATH: copy under bin/ at its path relative to the build
  local rel=${1#"$bin_dir"/}
  mkdir -p "$stage/bin/$(dirname "$rel")"
  cp "$1" "$stage/bin/$rel"
  echo "$rel"
}
exes=()
for t in hsd bench_kernels; do
  f=$(find "$bin_dir" -name "$t" -type f -perm -u+x -not -path '*/CMakeFiles/*' | head -1)
  [ -n "$f" ] || { echo "bundle-device: $t not built in $build" >&2; exit 1; }
  exes+=("$f")
  put "$f" >/dev/null
done
ctest --test-dir "$bin_dir" -L gpu --show-only=json-v1 > "$stage/ctest.json"
python3 - "$stage/ctest.json" "$bin_dir" > "$stage/gpu-tests.tsv" <<'EOF'
import json, os, sys
bin_dir = sys.argv[2]
for t in json.load(open(sys.argv[1]))["tests"]:
    props = {p["name"]: p["value"] for p in t.get("properties", [])}
    cmd = t["command"]
    exe = os.path.relpath(os.path.realpath(cmd[0]), os.path.realpath(bin_dir))
    print("\t".join([t["name"], str(int(props.get("TIMEOUT", 300))), exe] + cmd[1:]))
EOF
rm -f "$stage/ctest.json"
while IFS=$'\t' read -r name _ exe _; do
  [ -x "$bin_dir/$exe" ] || { echo "bundle-device: gpu test $name: $bin_dir/$exe not built" >&2; exit 1; }
  exes+=("$bin_dir/$exe")
  put "$bin_dir/$exe" >/dev/null
done < "$stage/gpu-tests.tsv"

for f in "${exes[@]}"; do
  if ldd "$f" | grep -q "not found"; then
    echo "bundle-device: $f has unresolved libraries here:" >&2; ldd "$f" | grep "not found" >&2; exit 1
  fi
  ldd "$f" | awk '$3 ~ /^\// {print $3}' | while read -r lib; do
    case "$(basename "$lib")" in
      libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|ld-linux*|libstdc++.so*|libgcc_s.so*|\
      libcuda.so*|libcublas*|libcudnn*|libnccl*|libnv*) ;;
      *) cp -nL "$lib" "$stage/lib/" ;;
    esac
  done
done

# CLIP's vocab (and its MIT licence) from host/text/data, for the SD 1.5
# tokenizer folder that gpu_parity.py --pipeline writes there.
gz=${HSD_CLIP_BPE_GZ:-$src_dir/host/text/data/clip_bpe_simple_vocab_16e6.txt.gz}
if [ -f "$gz" ]; then
  cp "$gz" "$stage/assets/clip_bpe_simple_vocab_16e6.txt.gz"
  [ -f "$(dirname "$gz")/LICENSE-CLIP.txt" ] && cp "$(dirname "$gz")/LICENSE-CLIP.txt" "$stage/assets/"
else
  echo "bundle-device: warning: no CLIP vocab at $gz: device-check's SD 1.5 pipeline steps will skip" >&2
fi

{
  echo "hybridsd device bundle, made $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
  echo "commit=$(git rev-parse HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo ' (+ uncommitted changes)')"
  echo "source_dir=$src_dir"
  echo "build_dir=$bin_dir"
  echo "cuda_archs=$archs"
  echo "c_flags=$(cachev CMAKE_C_FLAGS) native=$(cachev HSD_NATIVE) type=$(cachev CMAKE_BUILD_TYPE)"
  echo "nvcc=$(sed -n 's/^set(CMAKE_CUDA_COMPILER_VERSION "\(.*\)")/\1/p' "$bin_dir"/CMakeFiles/*/CMakeCUDACompiler.cmake 2>/dev/null | head -1)"
  echo "glibc=$(ldd --version | head -1 | awk '{print $NF}')"
  echo "executables:"; (cd "$stage/bin" && find . -type f | sed 's|^\./|  |' | sort)
  echo "libraries:"; (cd "$stage/lib" && ls | sed 's/^/  /')
  echo "gpu tests:"; cut -f1 "$stage/gpu-tests.tsv" | sed 's/^/  /'
} > "$stage/MANIFEST"

rm -rf "$dest"
mkdir -p "$dest"
cp "$stage/MANIFEST" "$dest/MANIFEST.txt"
echo "bundle-device: packing $(du -sh "$stage" | cut -f1) with xz"
tar -C "$stage" -cf - . | xz -T0 -6 > "$dest/bundle.tar.xz"
du -sh "$dest/bundle.tar.xz"
cat "$dest/MANIFEST.txt"
echo "bundle-device: carry $dest, then: HSD_PREBUILT=$dest bench/device-check.sh"
