"""Wall and CPU time of a 40-candidate plan (issue: "a few minutes on 2 cores").

Llama-3.1-70B, 5e7 tokens/day, diurnal, three GPU types, every candidate up to 40 simulated
(--top 40 keeps the search from stopping early), default request counts; then the day of each
deployment that met the SLO. Run: python benchmarks/plan_40.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from servesim.studies.plan import plan  # noqa: E402

if __name__ == "__main__":
    w0, c0 = time.perf_counter(), time.process_time()
    res = plan("llama-3.1-70b", tokens_per_day=5e7, pattern="diurnal", isl=1024, osl=256,
               slo={"ttft_ms": {"p90": 1000}, "tpot_ms": {"p99": 60}},
               hardware=["h100-sxm", "h200-sxm", "a100-sxm"], max_sims=40, top=40,
               extra_replicas=4)  # fmt: skip
    w1, c1 = time.perf_counter(), time.process_time()
    met = int(res.candidates["meets_slo"].sum())
    print(
        f"{len(res.candidates)} candidates simulated, {met} met the SLO and had their day "
        f"simulated ({len(res.day['levels'])} levels each); {len(res.options)} options ranked"
    )
    print(f"wall {w1 - w0:.1f} s, CPU {c1 - c0:.1f} s (one process)")
