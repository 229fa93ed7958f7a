#!/usr/bin/env bash
# Packs the CUDA test and benchmark binaries of a build, with the host
# libraries they need that a bare CUDA machine lacks (OpenBLAS and its
# Fortran runtime, ...), into one folder for bench/device-check.sh's
# HSD_PREBUILT mode: for a GPU machine whose image has the CUDA toolkit and
# PyTorch but not this project's Debian packages (the device tool's 'cuda'
# image), where configuring the project fails.
#
#   bench/bundle-device.sh [BUILD] [DEST]     defaults: build, .device-bundle
# then carry DEST to the GPU machine and run
#   HSD_PREBUILT=DEST bench/device-check.sh
# Not bundled: glibc, libstdc++/libgcc_s, libgomp (every toolchain image has
# them) and the CUDA libraries (the machine's toolkit provides them). The
# binaries must have been built for the card's arch (default 80 and 90).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
dest=${2:-.device-bundle}
bins=(test_cuda_device test_cuda_attention test_cuda_conv2d test_cuda_norm test_cuda_eltwise
      test_cuda_registry bench_kernels)
rm -rf "$dest"
mkdir -p "$dest/lib"
for b in "${bins[@]}"; do
  f=$(find "$build" -name "$b" -type f -perm -u+x | head -1)
  [ -n "$f" ] || { echo "bundle-device: $b not built in $build" >&2; exit 1; }
  cp "$f" "$dest/"
  ldd "$f" | awk '$3 ~ /^\// {print $3}' | while read -r lib; do
    case "$(basename "$lib")" in
      libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|ld-linux*|libstdc++.so*|libgcc_s.so*|\
      libgomp.so*|libcuda*|libcublas*|libcudnn*|libnv*) ;;
      *) cp -nL "$lib" "$dest/lib/" ;;
    esac
  done
done
du -sh "$dest"
echo "bundle-device: carry $dest, then: HSD_PREBUILT=$dest bench/device-check.sh"
