#!/usr/bin/env bash
# The repository stands alone (issue 13): a user clones it without the team's
# notes beside it, so no tracked file may name the folder above the checkout
# ("../" + "shared"), cite a document that is not in the repository, or
# point at a docs/ page that does not exist.
# Usage: self_contained.sh SOURCE_DIR
set -uo pipefail
src=${1:?usage: self_contained.sh SOURCE_DIR}
cd "$src" || exit 1
if git rev-parse --git-dir >/dev/null 2>&1; then
  mapfile -t files < <(git ls-files)
else
  mapfile -t files < <(find . -type f -not -path './build*' -not -path './.venv/*' -printf '%P\n')
fi
# Text files only (goldens and the vendored vocab are binary).
text=()
for f in "${files[@]}"; do
  [ -f "$f" ] && grep -Iq . "$f" 2>/dev/null && text+=("$f")
done
fail=0
# Built from pieces so this script does not match itself.
outside='\.\./'"shared"
if hits=$(grep -nE "$outside" -- "${text[@]}"); then
  echo "FAIL: files name the folder outside the repository:"; echo "$hits"; fail=1
fi
notes='\b(DESIGN|STYLE|METHOD|HOPPER)\.md\b'
if hits=$(grep -nE "$notes" -- "${text[@]}"); then
  echo "FAIL: files cite documents that are not in the repository:"; echo "$hits"; fail=1
fi
missing=$(grep -ohE '\bdocs/[A-Za-z0-9_.-]+\.md\b' -- "${text[@]}" | sort -u |
          while read -r d; do [ -f "$d" ] || echo "$d"; done)
if [ -n "$missing" ]; then
  echo "FAIL: cited docs pages that do not exist: $missing"; fail=1
fi
echo "checked ${#text[@]} text files of ${#files[@]}"
if ((fail)); then echo "0 passed, 1 failed"; exit 1; fi
echo "1 passed, 0 failed"
