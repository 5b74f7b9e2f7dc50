"""End-to-end check of the prediction bands: do NVIDIA's published NIM points (Llama-3.3-70B
FP8, 2 x H100, TP2; ../shared/data/measured/e2e_nim_h100_tp2.csv) fall inside the simulated 80%
band of TTFT, ITL and output throughput?

    python experiments/accuracy/interval_coverage.py [--points 1,5,25,50,100,150,200,250]

The band's relative bounds (interval.<metric>.lo / value, .hi / value of the run's summary) are
applied to the steady-state figures experiments/nim_validation compares with the measurement.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
_spec = importlib.util.spec_from_file_location(
    "nim_validation", ROOT / "experiments" / "nim_validation" / "run_validation.py"
)
nim = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(nim)

PAIRS = (
    ("ttft_ms", "ttft_ms_mean"),
    ("itl_ms", "itl_ms_mean"),
    ("output_tok_s", "output_throughput"),
)


def main() -> None:
    import servesim

    ap = argparse.ArgumentParser()
    ap.add_argument("--points", default="1,5,25,50,100,150,200,250")
    ap.add_argument("--requests-per-client", type=float, default=2.0)
    args = ap.parse_args()
    data = ROOT.parent / "shared" / "data"
    if not data.is_dir():
        data = Path("/work/shared/data")
    points = {int(p) for p in args.points.split(",")}
    inside = total = 0
    widths = []
    print("| concurrency | metric | measured | simulated | 80% band | inside |")
    print("|---:|---|---:|---:|---|---|")
    for m in nim.load_measured(data):
        c = m["concurrency"]
        if c not in points:
            continue
        n = max(int(math.ceil(c * (1 + args.requests_per_client))), 12)
        result = servesim.simulate(nim.point_config(c, n))
        steady = nim.steady_metrics(result, c)
        s = result.summary
        for key, metric in PAIRS:
            lo_f = s[f"interval.{metric}.lo"] / s[metric]
            hi_f = s[f"interval.{metric}.hi"] / s[metric]
            lo, hi = steady[key] * lo_f, steady[key] * hi_f
            ok = lo <= m[key] <= hi
            inside += ok
            total += 1
            widths.append(hi_f - lo_f)
            print(f"| {c} | {key} | {m[key]:.1f} | {steady[key]:.1f} | [{lo:.1f}, {hi:.1f}] | "
                  f"{'yes' if ok else 'no'} |")  # fmt: skip
    widths.sort()
    print(f"\ncoverage {inside}/{total} = {inside / total:.0%}; median relative width "
          f"{widths[len(widths) // 2]:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
