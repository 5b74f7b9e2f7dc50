"""Requests no instance can ever serve are dropped at entry and counted as failed with a reason
(sim/admission.py); sim.strict turns them into an error; runs without such requests are unchanged."""

from __future__ import annotations

import dataclasses

import pytest
from servesim.metrics import summarize

from servesim.sim.cluster import run
from servesim.sim.testing import ClientSpec, ListWorkload, linear_step_cost, placeholder_workload
from servesim.specs.common import SpecError
from servesim.specs.config import load_config

COST = linear_step_cost()
CONTEXT = 131_072  # llama-3.1-8b max_position_embeddings


def cfg(**sim):
    c = load_config(
        {
            "model": "llama-3.1-8b",
            "deployment": {"pools": [{"role": "colocated", "hardware": "h100-sxm"}]},
            "workload": placeholder_workload(),
        }
    )
    return dataclasses.replace(c, sim=dataclasses.replace(c.sim, **sim))


def test_too_long_for_context_and_kv_are_dropped_and_counted():
    # 4 fit; one is past the context window; one fits the window but not 64 blocks of 16 tokens
    specs = [(0.0, 100, 5), (0.1, CONTEXT, 1), (0.2, 100, 5), (0.3, 600, 500), (0.4, 50, 5),
             (0.5, 10, 10)]  # fmt: skip
    raw = run(cfg(), step_fn=COST, workload=ListWorkload(specs), kv_blocks=64)
    assert raw.issued == 6
    assert sorted(raw.requests["request_id"].tolist()) == [0, 2, 4, 5]
    assert raw.dropped == {"failed_context_window": 1, "failed_kv_capacity": 1}
    s = summarize(raw, cfg())
    assert (s["num_requests"], s["completed"], s["failed"]) == (6, 4, 2)
    assert s["failed_context_window"] == 1 and s["failed_kv_capacity"] == 1
    # tokens add up over the completed requests only
    assert s["total_input_tokens"] == 100 + 100 + 50 + 10


def test_the_context_bound_is_prompt_plus_output():
    ok = [(0.0, CONTEXT - 10, 10)]
    over = [(0.0, CONTEXT - 10, 11)]
    assert run(cfg(), step_fn=COST, workload=ListWorkload(ok)).dropped == {}
    raw = run(cfg(), step_fn=COST, workload=ListWorkload(over + [(0.1, 8, 8)]))
    assert raw.dropped == {"failed_context_window": 1} and raw.issued == 2


def test_strict_makes_a_dropped_request_an_error():
    with pytest.raises(SpecError, match="context window.*sim.strict"):
        run(cfg(strict=True), step_fn=COST, workload=ListWorkload([(0.0, CONTEXT + 1, 1)]))


def test_closed_loop_client_sends_its_next_request_after_a_drop():
    wl = ListWorkload([(0.0, 100, 4), (0.0, 600, 600)], clients=ClientSpec(2), num_requests=10)
    raw = run(cfg(), step_fn=COST, workload=wl, kv_blocks=64)
    assert raw.issued == 10
    assert raw.dropped == {"failed_kv_capacity": 5}
    assert len(raw.requests["request_id"]) == 5


def test_a_run_without_drops_has_no_failed_reason_keys():
    raw = run(cfg(), step_fn=COST, workload=ListWorkload([(0.0, 100, 5), (0.1, 50, 5)]))
    s = summarize(raw, cfg())
    assert s["failed"] == 0 and not [k for k in s if k.startswith("failed_")]


def test_request_count_and_arrival_time_caps_apply_at_run_time():
    specs = [(float(i), 10, 2) for i in range(5)]
    with pytest.raises(SpecError, match="sim.max_requests = 3"):
        run(cfg(max_requests=3), step_fn=COST, workload=ListWorkload(specs))
    with pytest.raises(SpecError, match="sim.max_duration_s"):
        run(cfg(max_duration_s=2.5), step_fn=COST, workload=ListWorkload(specs))


def test_a_run_past_the_simulated_time_cap_is_an_error():
    slow = linear_step_cost(base_s=10.0)  # 10 s per step: 4 requests take well over 30 s
    specs = [(0.0, 10, 4), (0.1, 10, 4), (0.2, 10, 4), (0.3, 10, 4)]
    assert run(cfg(), step_fn=slow, workload=ListWorkload(specs)).issued == 4
    with pytest.raises(SpecError, match="past sim.max_duration_s = 30"):
        run(cfg(max_duration_s=30.0), step_fn=slow, workload=ListWorkload(specs))
