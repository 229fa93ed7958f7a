#!/usr/bin/env bash
# Downloads, here, the Python wheels that bench/device-check.sh needs on the
# GPU machine and that its image lacks (the device tool's 'cuda' image has
# torch, transformers, safetensors, huggingface_hub, tokenizers, Pillow, ...,
# but no diffusers; nothing can be fetched there). Versions are the ones
# scripts/setup.sh installs (tests/oracle/requirements.txt): diffusers and
# transformers, both pure Python. --no-deps: their dependencies are in the
# image (huggingface-hub >= 1.32, safetensors >= 0.8, tokenizers 0.23,
# regex, Pillow, ...); device-check.sh checks the import and, if the pinned
# transformers does not import there, keeps the image's own.
#
#   bench/fetch-device-wheels.sh [DEST]       default .whl (git-ignored)
# then carry DEST with the device call (device-check.sh installs DEST/*.whl
# into a scratch folder on PYTHONPATH; HSD_WHEELS=DEST if not .whl).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-.whl}
req=tests/oracle/requirements.txt
py=${PYTHON:-}
if [ -z "$py" ]; then
  for c in .venv/bin/python python3; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -m pip --version >/dev/null 2>&1; then py=$c; break; fi
  done
fi
[ -n "$py" ] || { echo "fetch-device-wheels: no python with pip (run scripts/setup.sh)" >&2; exit 1; }
pins=()
for name in diffusers transformers; do
  pin=$(grep -iE "^${name}==" "$req" | head -1)
  [ -n "$pin" ] || { echo "fetch-device-wheels: no '$name==' pin in $req" >&2; exit 1; }
  pins+=("$pin")
done
mkdir -p "$dest"
# One version of each package in DEST (two would stop the install there).
for pin in "${pins[@]}"; do
  name=${pin%%==*}; ver=${pin#*==}
  for f in "$dest"/"$name"-*.whl; do
    [ -e "$f" ] || continue
    case "$(basename "$f")" in "$name-$ver-"*) ;; *) echo "fetch-device-wheels: removing $f"; rm -f "$f" ;; esac
  done
done
# The device runs CPython 3.12 on x86-64 Linux; these wheels are
# py3-none-any, the platform flags only let pip accept them for that target.
"$py" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
  --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$dest" "${pins[@]}"
ls -l "$dest"/*.whl
du -sh "$dest"
echo "fetch-device-wheels: carry $dest (the device call's carry list), see bench/device-check.sh"
