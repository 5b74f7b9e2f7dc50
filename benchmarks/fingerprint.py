"""A fingerprint of the engine's output: one hash per config over every step-log and request
column (values, dtypes, row order), so a change meant to keep results identical (a speed-up, a
restructuring) can be checked beyond the goldens, on PD, AF, pipelines, prefix caching, "runs"
step logs, closed loops and concurrency caps.

Usage (from the repository root):
    python benchmarks/fingerprint.py > before.txt   # on the old tree
    python benchmarks/fingerprint.py > after.txt    # on the new tree; `diff` must be empty
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CONFIGS = sorted((HERE / "configs").glob("*.yaml")) + sorted(
    (REPO / "tests" / "golden" / "configs").glob("*.yaml")
)


def fingerprint(path: Path) -> tuple[int, str]:
    from servesim.sim.cluster import run
    from servesim.specs.config import load_config

    raw = run(load_config(str(path)))
    h = hashlib.sha256()
    for table in (raw.steps, raw.requests):
        for k in sorted(table):
            col = np.ascontiguousarray(table[k])
            h.update(f"{k}:{col.dtype}".encode())
            h.update(col.tobytes())
    return len(raw.steps["instance"]), h.hexdigest()[:16]


def main(argv: list[str]) -> int:
    import os

    os.chdir(REPO)  # trace paths in the configs are relative to the repository root
    sys.path.insert(0, str(REPO))
    for path in [Path(a).resolve() for a in argv] or CONFIGS:
        rows, digest = fingerprint(path)
        print(f"{path.name:28} {rows:8d} step rows  {digest}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
