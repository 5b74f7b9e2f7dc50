"""Open loop capped at max_concurrency outstanding requests (benchmark_serving's --request-rate
with --max-concurrency): the cap holds, the extremes reduce to plain open and closed loop."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servesim.accounting.metrics import summarize
from servesim.sim.cluster import Cluster, run
from servesim.sim.testing import ClientSpec, ListWorkload, colocated_config, linear_step_cost
from servesim.specs.config import config_to_dict, load_config

COST = linear_step_cost(base_s=2e-3, prefill_token_s=2e-5, decode_seq_s=1e-4, ctx_token_s=1e-7)


def make_cfg(instances=1, ff=True, seqs=64, tokens=512, cap=None):
    workload = {
        "arrivals": {"process": "poisson", "rate": 40.0},
        "lengths": {
            "input": {"dist": "uniform", "mean": 200, "range_ratio": 0.5},
            "output": {"dist": "uniform", "mean": 40, "range_ratio": 0.9},
        },
        "num_requests": 150,
    }
    if cap is not None:
        workload["max_concurrency"] = cap
    return colocated_config(
        instances=instances,
        workload=workload,
        ff=ff,
        policy="sarathi",
        max_num_seqs=seqs,
        max_num_batched_tokens=tokens,
    )


def poisson_specs(n, rate, prompt=(50, 400), output=(1, 80), seed=3):
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.exponential(1 / rate, n))
    p = rng.integers(*prompt, n)
    o = rng.integers(*output, n)
    return [(float(a), int(b), int(c)) for a, b, c in zip(t, p, o)]


def capped(specs, cap):
    wl = ListWorkload(specs)
    wl.max_concurrency = cap  # the attribute servesim.workload.Workload exposes
    return wl


def outstanding_peak(req):
    # completions at a time free their slot before arrivals at that time are sent
    events = sorted([(a, 1) for a in req["arrival_s"]] + [(f, -1) for f in req["finish_s"]])
    level = peak = 0
    for _, d in events:
        level += d
        peak = max(peak, level)
    return peak


def assert_same_arrays(a, b):
    for k in a.requests:
        assert np.array_equal(a.requests[k], b.requests[k]), k
    for k in a.steps:
        assert np.array_equal(a.steps[k], b.steps[k]), k


def test_cap_outstanding_never_exceeds_cap_at_any_step():
    specs = poisson_specs(200, 200.0)
    seen = []
    holder = {}

    def hook(_inst):
        cl = holder["cl"]
        seen.append(cl.issued - cl.done)

    cl = Cluster(
        make_cfg(instances=2),
        step_fn=COST,
        workload=capped(specs, 5),
        kv_blocks=400,
        step_hook=hook,
    )
    holder["cl"] = cl
    raw = cl.run()
    assert len(raw.requests["request_id"]) == 200
    assert max(seen) == 5  # reached (the load is far above what 5 slots serve) and never passed
    assert outstanding_peak(raw.requests) == 5


def test_cap_held_requests_sent_in_arrival_order_at_a_completion():
    specs = poisson_specs(120, 300.0)
    raw = run(make_cfg(), step_fn=COST, workload=capped(specs, 3), kv_blocks=400)
    r = raw.requests
    intended = np.array(sorted(s[0] for s in specs))
    sent = r["arrival_s"][np.argsort(r["request_id"])]
    assert np.all(sent >= intended) and np.all(np.diff(sent) >= 0)
    late = sent > intended
    assert late.sum() > len(specs) // 2  # most requests waited for a slot
    # a held request goes exactly when some request finishes
    assert np.isin(sent[late], r["finish_s"]).all()
    # lengths still follow arrival order: request i is the i-th spec
    by_time = sorted(specs, key=lambda s: s[0])
    order = np.argsort(r["request_id"])
    assert r["prompt_tokens"][order].tolist() == [s[1] for s in by_time]


def test_cap_huge_equals_plain_open_loop_bit_for_bit():
    specs = poisson_specs(150, 60.0)
    cfg = make_cfg(instances=2)
    a = run(cfg, step_fn=COST, workload=ListWorkload(specs), kv_blocks=300)
    b = run(cfg, step_fn=COST, workload=capped(specs, 10**9), kv_blocks=300)
    assert_same_arrays(a, b)


@pytest.mark.parametrize("instances", [1, 3])
def test_cap_with_all_arrivals_at_zero_equals_closed_loop_zero_think(instances):
    specs = [(0.0, p, o) for _, p, o in poisson_specs(90, 1.0)]
    cfg = make_cfg(instances=instances)
    closed = ListWorkload(specs, clients=ClientSpec(6, 0.0), num_requests=len(specs))
    a = run(cfg, step_fn=COST, workload=closed, kv_blocks=300)
    b = run(cfg, step_fn=COST, workload=capped(specs, 6), kv_blocks=300)
    assert_same_arrays(a, b)
    sa, sb = summarize(a, cfg), summarize(b, cfg)
    keys = [k for k in sa if isinstance(sa[k], float)]
    assert keys and all(sa[k] == sb[k] for k in keys)


def test_cap_fast_forward_matches_plain_loop_across_instances():
    specs = poisson_specs(150, 150.0, output=(1, 200))
    kw = {"step_fn": COST, "kv_blocks": 200}
    cl = Cluster(make_cfg(instances=3, ff=True, seqs=16), workload=capped(specs, 20), **kw)
    a = cl.run()
    assert sum(i.ff_steps for i in cl.instances) > 0  # it did fast-forward
    b = run(make_cfg(instances=3, ff=False, seqs=16), workload=capped(specs, 20), **kw)
    assert_same_arrays(a, b)


def test_cap_from_workload_spec_same_seed_identical_arrays():
    cfg = make_cfg(instances=2, cap=4)
    a = run(cfg, step_fn=COST, kv_blocks=300)
    b = run(cfg, step_fn=COST, kv_blocks=300)
    for k in a.requests:
        assert a.requests[k].tobytes() == b.requests[k].tobytes(), k
    assert outstanding_peak(a.requests) == 4
    plain = run(make_cfg(instances=2), step_fn=COST, kv_blocks=300)
    # same stream of lengths, later (or equal) sending times
    assert np.array_equal(a.requests["output_tokens"], plain.requests["output_tokens"])
    assert np.all(a.requests["arrival_s"] >= plain.requests["arrival_s"])


def test_cap_on_trace_all_at_zero_summary_equals_closed_loop_clients(tmp_path):
    # rate inf through the built workload: a trace whose requests all arrive at 0, capped at 6,
    # against 6 closed-loop clients with no think time and the same lengths
    trace = tmp_path / "zero.csv"
    trace.write_text("arrival,prompt_tokens,output_tokens\n" + "0,300,30\n" * 120)
    fixed = {"input": {"dist": "fixed", "mean": 300}, "output": {"dist": "fixed", "mean": 30}}
    base = config_to_dict(make_cfg(instances=2))
    workloads = (
        {"trace": {"path": str(trace), "format": "csv"}, "max_concurrency": 6},
        {"clients": {"concurrency": 6}, "lengths": fixed, "num_requests": 120},
    )
    sums, raw = [], []
    for wl in workloads:
        data = copy.deepcopy(base)
        data["workload"] = wl
        cfg = load_config(data)
        raw.append(run(cfg, step_fn=COST, kv_blocks=300))
        sums.append(summarize(raw[-1], cfg))
    a, b = sums
    assert a["completed"] == 120 and outstanding_peak(raw[0].requests) == 6
    keys = [k for k in a if isinstance(a[k], (int, float)) and not isinstance(a[k], bool)]
    assert len(keys) > 20
    assert {k: a[k] for k in keys} == {k: b[k] for k in keys}


@settings(max_examples=15, deadline=None)
@given(
    cap=st.integers(1, 12),
    rate=st.floats(5.0, 2000.0),
    instances=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_cap_property_never_exceeded_and_fast_forward_exact(cap, rate, instances, seed):
    specs = poisson_specs(60, rate, output=(1, 120), seed=seed)
    kw = {"step_fn": COST, "kv_blocks": 120}
    a = run(make_cfg(instances=instances, seqs=8), workload=capped(specs, cap), **kw)
    b = run(make_cfg(instances=instances, seqs=8, ff=False), workload=capped(specs, cap), **kw)
    assert outstanding_peak(a.requests) <= cap
    assert_same_arrays(a, b)
