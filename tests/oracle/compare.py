"""Compare one tensor of two .safetensors files and print the worst element.

    python tests/oracle/compare.py GOT.safetensors:sample REF.safetensors:out [--tol 1e-4]

Exit 1 when max|got-ref| > tol * max|ref| (the docs/architecture.md §7 fp32 bound).
"""
import argparse
import json
import sys

import numpy as np
from safetensors.numpy import load_file


def load(spec):
    path, _, name = spec.rpartition(":")
    return load_file(path)[name].astype(np.float64)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("got")
    ap.add_argument("ref")
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    got, ref = load(a.got), load(a.ref)
    if got.shape != ref.shape:
        print(f"shape mismatch: {got.shape} vs {ref.shape}")
        return 1
    err = np.abs(got - ref)
    i = int(np.argmax(err))
    scale = float(np.abs(ref).max())
    rel = float(err.max()) / scale if scale else float(err.max())
    ok = bool(np.isfinite(got).all()) and rel <= a.tol
    print(json.dumps({"max_abs_err": float(err.max()), "max_abs_ref": scale, "rel": rel,
                      "worst_index": np.unravel_index(i, got.shape).__repr__(),
                      "got": float(got.flat[i]), "ref": float(ref.flat[i]),
                      "tol": a.tol, "ok": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
