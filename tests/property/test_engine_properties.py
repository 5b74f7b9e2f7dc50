"""Engine invariants on small random workloads (Hypothesis)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from servesim.sim.cluster import Cluster
from servesim.sim.testing import (
    ClientSpec,
    ListWorkload,
    colocated_config,
    linear_step_cost,
)

COST = linear_step_cost(base_s=2e-3, prefill_token_s=2e-5, decode_seq_s=1e-4, ctx_token_s=1e-7)

_CFGS: dict = {}


def config(policy, seqs, tokens, instances, router, block, prefix, ff, pp=1):
    key = (policy, seqs, tokens, instances, router, block, prefix, pp)
    if key not in _CFGS:
        _CFGS[key] = colocated_config(
            instances=instances,
            router=router,
            tp=1,
            pp=pp,
            policy=policy,
            max_num_seqs=seqs,
            max_num_batched_tokens=tokens,
            block_size=block,
            enable_prefix_caching=prefix,
        )
    cfg = _CFGS[key]
    return dataclasses.replace(cfg, sim=dataclasses.replace(cfg.sim, fast_forward=ff))


requests = st.lists(
    st.tuples(
        st.floats(0.0, 0.05),  # gap to the previous arrival
        st.integers(1, 120),  # prompt
        st.integers(1, 60),  # output
        st.integers(-1, 3),  # session
        st.integers(0, 4),  # shared prefix blocks
    ),
    min_size=1,
    max_size=25,
)
setups = st.tuples(
    st.sampled_from(["sarathi", "vllm", "prefill_first", "orca", "static"]),
    st.sampled_from([2, 8, 64]),
    st.sampled_from([64, 128, 512]),
    st.integers(1, 3),
    st.sampled_from(["round_robin", "least_loaded", "power_of_two", "random", "session"]),
    st.sampled_from([8, 16]),
    st.booleans(),
    st.integers(0, 40),  # spare KV blocks beyond the largest request
    st.sampled_from([1, 1, 2, 3]),  # pipeline stages (virtual engines per replica)
)


def specs_of(reqs):
    t, out = 0.0, []
    for gap, p, o, sid, shared in reqs:
        t += gap
        hashes = tuple(range(100, 100 + shared)) + tuple(
            range(10_000 + 100 * len(out), 10_000 + 100 * len(out) + p // 16)
        )
        out.append((t, p, o, sid, hashes[: p // 16]))
    return out


def simulate(reqs, setup, ff=True, hook=None, clients=None):
    policy, seqs, tokens, instances, router, block, prefix, spare, pp = setup
    if policy != "static" and tokens < seqs:
        tokens = seqs
    specs = specs_of(reqs)
    need = max(-(-(p + o - 1) // block) for _, p, o, _, _ in specs)
    if policy == "static":
        need = need * seqs
    cfg = config(policy, seqs, tokens, instances, router, block, prefix, ff, pp)
    wl = ListWorkload(
        specs, clients=clients, num_requests=len(specs) if clients is None else 2 * len(specs)
    )
    cl = Cluster(cfg, step_fn=COST, workload=wl, kv_blocks=(need + spare) * pp, step_hook=hook)
    return cl, cl.run()


SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def held_blocks(inst):
    """(private blocks, prefix refs) that the instance's requests hold, counted request by request
    (a decoding request holds the blocks for its context up to the allocated iteration)."""
    private, refs = 0, {}
    running = [*inst.prefilling, *inst.dec.members.values()]
    for r in running:
        for k in r.cached_hashes:
            refs[k] = refs.get(k, 0) + 1
        if r in inst.prefilling or r.reserved:
            private += r.blocks
        else:
            ctx = r.ctx0 + inst.dec.alloc_clock - r.join
            private += inst.kv.blocks_for(ctx) - len(r.cached_hashes)
    return private, refs


@SETTINGS
@given(requests, setups)
def test_engine_conserves_requests_tokens_and_kv_blocks(reqs, setup):
    bad = []

    def hook(inst):
        if not inst.kv.check() or inst.kv.used > inst.kv.total:
            bad.append(inst.id)
        if held_blocks(inst) != (inst.kv.private, inst.kv.refs):
            bad.append(inst.id)

    cl, raw = simulate(reqs, setup, hook=hook)
    r, s = raw.requests, raw.steps
    assert not bad
    assert len(r["request_id"]) == len(reqs) == raw.issued
    assert sorted(r["request_id"]) == list(range(len(reqs)))
    assert int(s["new_tokens"].sum()) == int(r["output_tokens"].sum())
    fresh = int((r["prompt_tokens"] - r["cached_tokens"]).sum())
    if r["preemptions"].sum() == 0:
        assert int(s["prefill_tokens"].sum()) <= fresh  # later prefix hits only lower it
    # Little's law, and the step log's population equals what the request records imply
    e2e = r["finish_s"] - r["arrival_s"]
    t_end = raw.sim_end_s
    grid = np.sort(np.r_[r["arrival_s"], r["finish_s"], t_end])
    mid = (grid[:-1] + grid[1:]) / 2
    in_sys = np.searchsorted(np.sort(r["arrival_s"]), mid) - np.searchsorted(
        np.sort(r["finish_s"]), mid
    )
    assert np.sum(in_sys * np.diff(grid)) / t_end == pytest.approx(
        len(e2e) / t_end * e2e.mean(), rel=1e-9
    )
    ends = s["start_s"] + s["duration_s"]
    for i in range(len(cl.instances)):
        mine = s["instance"] == i
        arr = np.sort(r["arrival_s"][r["instance"] == i])
        fin = np.sort(r["finish_s"][r["instance"] == i])
        pop = np.searchsorted(arr, ends[mine], side="left") - np.searchsorted(
            fin, ends[mine], side="right"
        )
        assert np.array_equal(pop, s["waiting"][mine] + s["running"][mine])
    for inst in cl.instances:
        assert inst.kv.used == 0 and inst.kv.check()
        assert not inst.waiting and not inst.prefilling and inst.n_dec == 0 and inst.load == 0


@SETTINGS
@given(requests, setups)
def test_engine_causality_arrival_scheduled_first_token_finish(reqs, setup):
    _, raw = simulate(reqs, setup)
    r, s = raw.requests, raw.steps
    for i in np.unique(s["instance"]):  # one batch in flight per instance (virtual engine)
        mine = s["instance"] == i
        # duration_s is logged as end - start, so start + duration_s may exceed end by an ulp
        ends = (s["start_s"] + s["duration_s"])[mine][:-1]
        assert np.all(s["start_s"][mine][1:] >= ends - 1e-12 * np.maximum(ends, 1.0))
    assert np.all(r["arrival_s"] <= r["scheduled_s"])
    assert np.all(r["scheduled_s"] < r["first_token_s"])
    assert np.all(r["first_token_s"] <= r["finish_s"])
    assert np.all((r["output_tokens"] > 1) | (r["first_token_s"] == r["finish_s"]))
    assert raw.sim_end_s >= r["finish_s"].max()


@SETTINGS
@given(requests, setups)
def test_engine_fast_forward_equals_plain_loop(reqs, setup):
    _, a = simulate(reqs, setup, ff=True)
    _, b = simulate(reqs, setup, ff=False)
    for k in a.requests:
        assert np.array_equal(a.requests[k], b.requests[k]), k
    for k in a.steps:
        assert np.array_equal(a.steps[k], b.steps[k]), k


@SETTINGS
@given(requests, setups, st.integers(1, 5), st.sampled_from([0.0, 0.003]))
def test_engine_closed_loop_concurrency_never_exceeded_ff_exact(reqs, setup, n, think):
    clients = ClientSpec(n, think)
    _, a = simulate(reqs, setup, ff=True, clients=clients)
    _, b = simulate(reqs, setup, ff=False, clients=clients)
    r = a.requests
    order = np.lexsort(
        (
            np.r_[np.ones(len(r["arrival_s"])), -np.ones(len(r["finish_s"]))],
            np.r_[r["arrival_s"], r["finish_s"]],
        )
    )
    level = np.cumsum(np.r_[np.ones(len(r["arrival_s"])), -np.ones(len(r["finish_s"]))][order])
    assert level.max() <= n
    for k in a.requests:
        assert np.array_equal(a.requests[k], b.requests[k]), k
