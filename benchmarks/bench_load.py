"""Load benchmark: whole `servesim run --out` runs (simulate and write every output file) and
their peak memory, to back the memory bound stated in docs/reliability.md.

Scenarios:
  L1      16 replicas of Llama-3.1-8B on H100, Poisson 160 req/s, (input, output) pairs resampled
          from the Azure 2023 conv trace, 50,000 requests
  L2-200k Llama-3.1-8B on one A100 (benchmarks/bench_engine.py's S1), 200,000 requests, step log
          in "runs" mode
  L2      the same with 1,000,000 requests

Usage: python benchmarks/bench_load.py [L1 L2-200k L2] [--keep DIR]
Each scenario runs `python -m servesim run CONFIG --out DIR -q` in a fresh subprocess; its peak
RSS is read from the child's resource usage. Not a test: nothing asserts on time or memory.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
from bench_engine import conv_trace, s1  # noqa: E402


def l1() -> dict:
    return {
        "model": "llama-3.1-8b",
        "deployment": {
            "pools": [{"role": "colocated", "hardware": "h100-sxm", "instances": 16,
                       "scheduler": {"policy": "sarathi", "max_num_seqs": 256,
                                     "max_num_batched_tokens": 8192}}],
            "router": "least_loaded",
        },
        "workload": {
            "arrivals": {"process": "poisson", "rate": 160.0},
            "lengths": {"empirical": conv_trace(), "format": "azure"},
            "num_requests": 50_000,
        },
        "seed": 0,
    }  # fmt: skip


SCENARIOS = {"L1": l1, "L2-200k": lambda: s1(200_000, "runs"), "L2": lambda: s1(1_000_000, "runs")}


def measure(name: str, keep: Path | None) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"servesim-{name}-"))
    cfg = work / "config.yaml"
    cfg.write_text(yaml.safe_dump(SCENARIOS[name]()))
    out = work / "out"
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    before = ru0.ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "servesim", "run", str(cfg), "--out", str(out), "-q"],
        cwd=REPO, capture_output=True, text=True, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - t0
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak = ru.ru_maxrss  # KiB, max over children
    cpu = (ru.ru_utime + ru.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    if proc.returncode:
        raise SystemExit(f"{name}: exit {proc.returncode}\n{proc.stderr[-2000:]}")
    summary = json.loads((out / "summary.json").read_text())
    sizes = {p.name: round(p.stat().st_size / 2**20, 1) for p in sorted(out.iterdir())}
    row = {
        "scenario": name,
        "requests": summary["num_requests"],
        "completed": summary["completed"],
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "peak_rss_mb": round(max(peak, before) / 1024, 1),
        "out_mb": sizes,
    }
    if keep is not None:
        shutil.copytree(out, keep / name, dirs_exist_ok=True)
    shutil.rmtree(work, ignore_errors=True)
    return row


def main(argv: list[str]) -> int:
    keep = None
    if "--keep" in argv:
        i = argv.index("--keep")
        keep = Path(argv[i + 1])
        argv = argv[:i] + argv[i + 2 :]
    for name in argv or list(SCENARIOS):
        # one scenario per process, so the children's peak RSS is this scenario's
        proc = subprocess.run([sys.executable, __file__, "--one", name, *(
            ["--keep", str(keep)] if keep else [])], capture_output=True, text=True, check=False)  # fmt: skip
        print(proc.stdout.strip() or proc.stderr[-2000:], flush=True)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        rest = sys.argv[3:]
        k = Path(rest[1]) if rest[:1] == ["--keep"] else None
        print(json.dumps(measure(sys.argv[2], k)))
        sys.exit(0)
    sys.exit(main(sys.argv[1:]))
