#!/bin/sh
# Regenerate every committed U-Net golden under tests/data/unet/ from diffusers.
#
#   tests/oracle/regen.sh                 # uses .venv/bin/python of the repo
#   PYTHON=/path/to/python tests/oracle/regen.sh
#
# The Python environment is tests/oracle/requirements.txt (exact pins: other
# torch/diffusers versions may change the last bits of the goldens). Output
# is deterministic: running this twice gives byte-identical files.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
PYTHON=${PYTHON:-$root/.venv/bin/python}
out=$root/tests/data/unet
exec "$PYTHON" "$here/make_unet_cases.py" --out "$out" "$@"
