"""Queueing theory: one replica, batch cap 1, fixed lengths (deterministic service) is M/D/1."""

from __future__ import annotations

import numpy as np
import pytest

from servesim.sim.cluster import run
from servesim.sim.testing import colocated_config, linear_step_cost

SERVICE_S = 0.01  # one prefill step per request (output 1): deterministic service time


def md1_config(rho: float, n: int, seed: int = 0):
    workload = {
        "arrivals": {"process": "poisson", "rate": rho / SERVICE_S},
        "lengths": {
            "input": {"dist": "fixed", "mean": 100},
            "output": {"dist": "fixed", "mean": 1},
        },
        "num_requests": n,
    }
    return colocated_config(
        router=None,
        workload=workload,
        seed=seed,
        policy="sarathi",
        max_num_seqs=1,
        max_num_batched_tokens=512,
    )


@pytest.mark.parametrize(("rho", "n"), [(0.5, 40_000), (0.8, 120_000)])
def test_queueing_md1_mean_wait_matches_pollaczek_khinchine(rho, n):
    raw = run(
        md1_config(rho, n),
        step_fn=linear_step_cost(base_s=SERVICE_S, prefill_token_s=0.0),
        kv_blocks=64,
    )
    r = raw.requests
    assert len(r["request_id"]) == n
    service = r["finish_s"] - r["scheduled_s"]
    assert np.allclose(service, SERVICE_S)
    wait = (r["scheduled_s"] - r["arrival_s"]).mean()
    expected = rho * SERVICE_S / (2 * (1 - rho))
    assert wait == pytest.approx(expected, rel=0.05)


def test_queueing_littles_law_holds_and_step_log_population_agrees():
    raw = run(
        md1_config(0.7, 5_000, seed=3),
        step_fn=linear_step_cost(base_s=SERVICE_S, prefill_token_s=0.0),
        kv_blocks=64,
    )
    r, s = raw.requests, raw.steps
    horizon = raw.sim_end_s
    # L from an event sweep of the time in system, against lambda * W
    events = np.concatenate(
        [
            np.stack([r["arrival_s"], np.ones(len(r["arrival_s"]))], 1),
            np.stack([r["finish_s"], -np.ones(len(r["finish_s"]))], 1),
        ]
    )
    events = events[np.lexsort((events[:, 1], events[:, 0]))]
    level = np.cumsum(events[:, 1])
    area = float(np.sum(level[:-1] * np.diff(events[:, 0])))
    lam = len(r["arrival_s"]) / horizon
    w = float((r["finish_s"] - r["arrival_s"]).mean())
    assert area / horizon == pytest.approx(lam * w, rel=1e-9)
    # the engine's own population after every step equals what the request records say
    ends = s["start_s"] + s["duration_s"]
    arrived = np.searchsorted(
        np.sort(r["arrival_s"]), ends, side="left"
    )  # arrivals at a step end come after it
    finished = np.searchsorted(np.sort(r["finish_s"]), ends, side="right")
    assert np.array_equal(arrived - finished, s["waiting"] + s["running"])
