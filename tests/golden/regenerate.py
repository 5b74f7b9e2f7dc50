"""Golden runs: small configs (<= 200 requests) whose summaries are checked in.

Regenerate after an intended change of results (cost model, engine, metrics), then review the
diff of tests/golden/expected/*.json before committing:

    python -m tests.golden.regenerate          # from the repository root

test_golden_runs.py reruns each config, compares every summary key to the checked-in value (1e-9
relative) and checks invariants on the fresh run, so a golden file cannot freeze a bug. It also
compares the bytes of summary.json and requests.parquet, as ``Result.to_dir`` writes them, with
the copies under tests/golden/bytes/ (restructuring the engine must not move a single bit).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CONFIGS = HERE / "configs"
EXPECTED = HERE / "expected"
BYTES = HERE / "bytes"  # <name>.summary.json, <name>.requests.parquet as Result.to_dir writes them
BYTE_FILES = ("summary.json", "requests.parquet")
REGENERATE = "python -m tests.golden.regenerate"


def names() -> list[str]:
    return sorted(p.stem for p in CONFIGS.glob("*.yaml"))


def run(name: str) -> Any:
    """The Result of one golden config."""
    import servesim

    return servesim.simulate(str(CONFIGS / f"{name}.yaml"))


def expected(name: str) -> dict[str, Any]:
    return json.loads((EXPECTED / f"{name}.json").read_text(encoding="utf-8"))


def _finite(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def write_bytes(res: Any, name: str, folder: Path) -> None:
    """summary.json and requests.parquet of ``res`` as ``folder/<name>.<file>``."""
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = res.to_dir(Path(tmp) / "run")
        for f in BYTE_FILES:
            shutil.copyfile(out / f, folder / f"{name}.{f}")


def main() -> int:
    EXPECTED.mkdir(exist_ok=True)
    BYTES.mkdir(exist_ok=True)
    for name in names():
        res = run(name)
        summary = {k: _finite(v) for k, v in res.summary.items()}
        text = json.dumps(summary, indent=1, allow_nan=False) + "\n"
        (EXPECTED / f"{name}.json").write_text(text, encoding="utf-8")
        write_bytes(res, name, BYTES)
        print(f"wrote {EXPECTED / name}.json ({len(summary)} keys) and bytes/", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
