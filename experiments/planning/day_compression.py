"""Time compression of the planner's day against a run of the whole day (docs/planning.md).

Reference case: Llama-3.1-8B on one H100 (TP1, max_num_seqs 64), ISL 512 / OSL 128, a diurnal
day (peak/trough 3, trough at 03:30) at a mean of MEAN_RPS. The whole day is the engine's own
diurnal arrival process over 86,400 s; the planner's day is its rate levels (planning.day.levels)
each simulated for DAY_REQUESTS requests. Printed: busy fraction, energy and latency percentiles
of both, and their relative differences. Run: python experiments/planning/day_compression.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from servesim.result import simulate  # noqa: E402
from servesim.studies.planning.day import day_profile, levels  # noqa: E402
from servesim.studies.planning.daysim import samples_runner, simulate_day  # noqa: E402
from servesim.studies.planning.slo import slo_targets  # noqa: E402

MEAN_RPS = float(sys.argv[1]) if len(sys.argv) > 1 else 0.05
DAY_REQUESTS = int(sys.argv[2]) if len(sys.argv) > 2 else 300
SLO = {"ttft_ms": {"p90": 500}, "tpot_ms": {"p99": 50}}
BASE = {
    "model": "llama-3.1-8b",
    "deployment": {"pools": [{"role": "colocated", "hardware": "h100-sxm", "instances": 1,
                              "parallelism": {"tp": 1}, "scheduler": {"max_num_seqs": 64}}]},
    "slo": SLO,
    "seed": 0,
}  # fmt: skip
LENGTHS = {"input": {"dist": "fixed", "mean": 512}, "output": {"dist": "fixed", "mean": 128}}


def full_day() -> dict:
    cfg = dict(BASE, workload={
        "arrivals": {"process": "diurnal", "rate": MEAN_RPS, "peak_to_trough": 3.0,
                     "period_s": 86400.0, "phase_s": 3.5 * 3600},
        "lengths": LENGTHS, "duration_s": 86400.0})  # fmt: skip
    res = simulate(cfg)
    s, r = res.summary, res.requests
    return {
        "busy_fraction": s["device_busy_s"] / (86400.0 * 1),
        "energy_kwh": s["energy_kwh"] * 86400.0 / s["energy_duration_s"],
        "ttft_ms_p90": float(np.percentile(r["ttft_s"] * 1e3, 90)),
        "tpot_ms_p99": float(np.percentile(r["tpot_s"].dropna() * 1e3, 99)),
        "e2el_ms_p99": float(np.percentile(r["e2el_s"] * 1e3, 99)),
        "requests": len(r),
    }


def compressed() -> dict:
    prof = day_profile("diurnal")
    lv = levels(prof, MEAN_RPS)
    cfg = dict(BASE, workload={"arrivals": {"process": "poisson", "rate": lv[0].rate},
                               "lengths": LENGTHS, "num_requests": DAY_REQUESTS})  # fmt: skip
    peak = samples_runner(cfg)
    day = simulate_day(cfg, lv, peak, samples_runner, DAY_REQUESTS, slo_targets(SLO), 1,
                       70.0, float(peak.get("pue") or 1.0), 512, 128)  # fmt: skip
    return {"busy_fraction": day.busy_device_s / 86400.0, "energy_kwh": day.energy_kwh,
            **{k: day.latency[k] for k in ("ttft_ms_p90", "tpot_ms_p99", "e2el_ms_p99")},
            "requests": day.requests, "levels": len(lv)}  # fmt: skip


if __name__ == "__main__":
    t0 = time.time()
    c = compressed()
    t1 = time.time()
    f = full_day()
    t2 = time.time()
    print(f"mean {MEAN_RPS} req/s, {DAY_REQUESTS} requests per level, {c['levels']} levels")
    print(
        f"compressed: {t1 - t0:.1f} s wall; full day: {t2 - t1:.1f} s wall ({f['requests']} requests)"
    )
    for k in (
        "busy_fraction",
        "energy_kwh",
        "ttft_ms_p90",
        "tpot_ms_p99",
        "e2el_ms_p99",
        "requests",
    ):
        rel = (c[k] - f[k]) / f[k]
        print(f"{k:14s} full {f[k]:12.5g}  compressed {c[k]:12.5g}  rel. diff {100 * rel:+6.2f}%")
