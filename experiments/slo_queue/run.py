"""FIFO vs the `slo` queue order on the default deployment (Llama-3.1-8B, one H100, the bundled
Azure conv sample, 2,000 requests), the trace replayed 1x, 3x and 6x faster.

Run from the repository root: `python experiments/slo_queue/run.py` (about 10 s).
Prints, per speed-up and order: the share of requests with TTFT <= the config's target
(slo.ttft_ms p90 = 500 ms), TTFT p50/p99 and goodput (requests/s meeting TTFT and TPOT).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import servesim  # noqa: E402
from servesim.specs.config import load_config  # noqa: E402


def main() -> None:
    print("speedup order  ttft<=target  ttft_p50_ms  ttft_p99_ms  goodput_rps")
    for speed in (1.0, 3.0, 6.0):
        for order in ("fifo", "slo"):
            cfg = load_config(None, overrides={"deployment.pools.0.scheduler.queue": order,
                                               "workload.trace.speedup": speed,
                                               "workload.num_requests": 2000})  # fmt: skip
            res = servesim.simulate(cfg)
            ttft = (res.requests["first_token_s"] - res.requests["arrival_s"]).to_numpy() * 1e3
            target = min(v for _, v in cfg.slo.ttft_ms)
            print(f"{speed:7.0f} {order:5s} {np.mean(ttft <= target):13.3f} "
                  f"{np.median(ttft):12.1f} {np.percentile(ttft, 99):12.1f} "
                  f"{res.summary['goodput_rps']:12.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
