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
# CUDA libraries (issue 16: a bundle must load on any H100/H200 image, CUDA
# 12 or 13, with or without a cu12 PyTorch): every CUDA library the binaries
# link (cudart, cuBLAS, cuBLASLt, cuDNN, NCCL) at the versions the build
# used, cuDNN's sub-libraries that it dlopens (libcudnn_*.so.9) and what
# those need (NVRTC, nvJitLink), into lib/. Every bundled binary gets
# DT_RPATH $ORIGIN/<path to lib/> and every bundled library $ORIGIN
# (patchelf --force-rpath: DT_RPATH is searched before LD_LIBRARY_PATH, so an
# image's own libcudnn.so.9 cannot shadow ours), and the script checks that
# `ldd` of every bundled binary, with LD_LIBRARY_PATH unset, resolves every
# CUDA library inside the bundle. Only the driver (libcuda.so.1) comes from
# the machine; device-check.sh's preflight checks it is new enough.
# Size: ~1.3 GB of CUDA libraries (cuBLASLt 540 MB, cuDNN's engines 250 MB,
# NCCL 218 MB), far over the device tool's 64 MiB carry.
# HSD_BUNDLE_CUDA=image leaves cuBLAS/cuDNN/NCCL/NVRTC to the image (as
# before: device-check.sh finds the toolkit's or PyTorch's wheels; only
# cudart is bundled), for when the bundle must be carried that way.
# HSD_BUNDLE_PACK=0 skips the tarball and leaves the tree in DEST/bundle/
# (HSD_PREBUILT=DEST uses either).
# Not bundled: glibc, libstdc++/libgcc_s (the image is newer than Debian 12's),
# the driver (libcuda, libnvidia-*).
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

cuda_mode=${HSD_BUNDLE_CUDA:-all}
is_cuda_lib() { case "$1" in libcudart*|libcublas*|libcudnn*|libnccl*|libnvrtc*|libnvJitLink*) return 0 ;; esac; return 1; }
# bundle_deps FILE: copies FILE's libraries (ldd) into lib/, but the system's
# and the driver's (and, with HSD_BUNDLE_CUDA=image, CUDA's but cudart);
# each copy is noted in $stage/.new.
bundle_deps() {
  if ldd "$1" | grep -q "not found"; then
    echo "bundle-device: $1 has unresolved libraries here:" >&2; ldd "$1" | grep "not found" >&2; exit 1
  fi
  while read -r lib; do
    b=$(basename "$lib")
    case "$b" in
      libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|ld-linux*|libstdc++.so*|libgcc_s.so*|\
      libcuda.so*|libnvidia-*) continue ;;
    esac
    if [ "$cuda_mode" = image ] && is_cuda_lib "$b" && [[ $b != libcudart* ]]; then continue; fi
    [ -e "$stage/lib/$b" ] || { cp -L "$lib" "$stage/lib/$b"; echo "$b" >> "$stage/.new"; }
  done < <(ldd "$1" | awk '$3 ~ /^\// {print $3}')
}
for f in "${exes[@]}"; do bundle_deps "$f"; done
if [ "$cuda_mode" != image ]; then
  # cuDNN dlopens its sub-libraries by name: take every one beside libcudnn.so.9.
  cudnn=$(ldd "${exes[0]}" | awk '$1 ~ /^libcudnn\.so/ {print $3}' | head -1)
  if [ -n "$cudnn" ]; then
    for lib in "$(dirname "$cudnn")"/libcudnn_*.so.[0-9]; do cp -nL "$lib" "$stage/lib/"; done
  fi
  # libcudnn_graph dlopens libnvrtc.so.<major> for its runtime-compiled
  # engines, NVRTC its builtins, and the JIT link step nvJitLink: from the
  # toolkit beside cudart (or cuDNN's folder, for PyTorch's wheels).
  cudart=$(ldd "${exes[0]}" | awk '$1 ~ /^libcudart\.so/ {print $3}' | head -1)
  for d in ${cudart:+"$(dirname "$cudart")"} ${cudnn:+"$(dirname "$cudnn")"}; do
    for lib in "$d"/libnvrtc.so.[0-9]* "$d"/libnvrtc-builtins.so.[0-9]* "$d"/libnvJitLink.so.[0-9]*; do
      [ -f "$lib" ] && cp -nL "$lib" "$stage/lib/"
    done
  done
  # What the bundled libraries need in turn (NVRTC for cuDNN's runtime-compiled
  # engines, ...), until nothing new comes.
  while :; do
    rm -f "$stage/.new"
    for lib in "$stage"/lib/*.so*; do bundle_deps "$lib"; done
    [ -f "$stage/.new" ] || break
  done
fi
rm -f "$stage/.new"
# RPATH: executables look in the bundle's lib/, libraries beside themselves.
while read -r f; do
  rel=$(realpath --relative-to="$(dirname "$f")" "$stage/lib")
  patchelf --force-rpath --set-rpath "\$ORIGIN/$rel" "$f"
done < <(find "$stage/bin" -type f -perm -u+x)
for lib in "$stage"/lib/*.so*; do patchelf --force-rpath --set-rpath '$ORIGIN' "$lib"; done
# The check: every CUDA library of every bundled binary resolves inside the
# bundle with no help from the environment, and nothing bundled lacks a library.
bad=0
while read -r f; do
  if env -u LD_LIBRARY_PATH ldd "$f" | grep -q "not found"; then
    echo "bundle-device: ${f#"$stage"/}:" >&2; env -u LD_LIBRARY_PATH ldd "$f" | grep "not found" >&2; bad=1
  fi
done < <(find "$stage/bin" "$stage/lib" -type f \( -perm -u+x -o -name '*.so*' \))
while read -r f; do
  while read -r name _ path _; do
    is_cuda_lib "$name" || continue
    if [ "$cuda_mode" = image ] && [[ $name != libcudart* ]]; then continue; fi
    case "$(realpath -m "$path")" in "$stage"/lib/*) ;; *) echo "bundle-device: ${f#"$stage"/}: $name -> $path (not the bundle's)" >&2; bad=1 ;; esac
  done < <(env -u LD_LIBRARY_PATH ldd "$f")
done < <(find "$stage/bin" -type f -perm -u+x)
((bad)) && { echo "bundle-device: CUDA libraries resolve outside the bundle (above)" >&2; exit 1; }
echo "bundle-device: ldd of every bundled binary resolves its CUDA libraries from the bundle alone" \
     "($cuda_mode): $(cd "$stage/lib" && ls | grep -cE '^lib(cudart|cublas|cudnn|nccl|nvrtc|nvJitLink)') CUDA libraries, $(du -sh "$stage/lib" | cut -f1) in lib/"

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
  nvcc_v=$(sed -n 's/^set(CMAKE_CUDA_COMPILER_VERSION "\(.*\)")/\1/p' "$bin_dir"/CMakeFiles/*/CMakeCUDACompiler.cmake 2>/dev/null | head -1)
  echo "nvcc=$nvcc_v"
  # What device-check.sh's preflight compares the driver against.
  echo "cuda_runtime=$(echo "$nvcc_v" | cut -d. -f1-2)"
  echo "cuda_libs=$cuda_mode"
  echo "glibc=$(ldd --version | head -1 | awk '{print $NF}')"
  echo "executables:"; (cd "$stage/bin" && find . -type f | sed 's|^\./|  |' | sort)
  echo "libraries:"; (cd "$stage/lib" && ls | sed 's/^/  /')
  echo "gpu tests:"; cut -f1 "$stage/gpu-tests.tsv" | sed 's/^/  /'
} > "$stage/MANIFEST"

rm -rf "$dest"
mkdir -p "$dest"
cp "$stage/MANIFEST" "$dest/MANIFEST.txt"
if [ "${HSD_BUNDLE_PACK:-1}" = 0 ]; then
  mv "$stage" "$dest/bundle"
  mkdir -p "$stage"  # for the EXIT trap
  echo "bundle-device: unpacked tree in $dest/bundle ($(du -sh "$dest/bundle" | cut -f1); no tarball)"
else
  echo "bundle-device: packing $(du -sh "$stage" | cut -f1) with xz"
  tar -C "$stage" -cf - . | xz -T0 -6 > "$dest/bundle.tar.xz"
  du -sh "$dest/bundle.tar.xz"
  size=$(stat -c %s "$dest/bundle.tar.xz")
  if (( size > 64 * 1024 * 1024 )); then
    echo "bundle-device: warning: $((size >> 20)) MiB is over the device tool's 64 MiB carry" \
         "(HSD_BUNDLE_CUDA=image leaves the CUDA libraries to the image)" >&2
  fi
fi
cat "$dest/MANIFEST.txt"
echo "bundle-device: carry $dest, then: HSD_PREBUILT=$dest bench/device-check.sh"
