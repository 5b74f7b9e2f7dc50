"""Hypothesis: with the real cost model (its bound hot path: cost/stepfast.py), fast-forwarding
and inline steps give exactly the plain loop's step log and request records, for every policy,
with preemption (a small KV cache), prefix caching, several instances, both step-log modes and the
fifo and slo queue orders."""

from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from servesim.sim.cluster import run
from servesim.sim.testing import ListWorkload, colocated_config
from servesim.specs.config import POLICIES


@st.composite
def workloads(draw):
    n = draw(st.integers(5, 60))
    rate = draw(st.floats(2.0, 200.0))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.exponential(1 / rate, n))
    prompt = rng.integers(1, 1500, n)
    output = rng.integers(1, 300, n)
    shared = draw(st.booleans())  # prefix ids shared by some requests (prefix caching)
    specs = []
    for i, (a, p, o) in enumerate(zip(t, prompt, output)):
        hashes = tuple(range(int(p) // 16)) if shared and i % 2 else ()
        specs.append((float(a), int(p), int(o), -1, hashes))
    return specs


@settings(max_examples=25, deadline=None)
@given(
    workloads(),
    st.sampled_from(POLICIES),
    st.sampled_from([60, 200, 2000]),  # KV blocks: heavy preemption .. none
    st.integers(1, 2),
    st.booleans(),
    st.sampled_from(["full", "runs"]),
    st.sampled_from(["fifo", "slo"]),  # slo: fast-forward only while nothing waits
)
def test_fast_forward_equals_plain_loop_with_the_real_cost_model(
    specs, policy, blocks, instances, prefix, step_log, queue
):
    def once(ff: bool):
        cfg = colocated_config(
            instances=instances,
            ff=ff,
            policy=policy,
            max_num_seqs=32,
            max_num_batched_tokens=512,
            enable_prefix_caching=prefix,
            queue=queue,
            slo={"ttft_ms": {"p90": 200}},
        )
        cfg = dataclasses.replace(cfg, sim=dataclasses.replace(cfg.sim, step_log=step_log))
        return run(cfg, workload=ListWorkload(specs), kv_blocks=blocks)

    fast, plain = once(True), once(False)
    for table in ("steps", "requests"):
        a, b = getattr(fast, table), getattr(plain, table)
        assert list(a) == list(b)
        for k in a:
            assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), (table, k)
