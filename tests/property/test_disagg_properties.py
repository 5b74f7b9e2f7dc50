"""Prefill/decode pools under random workloads: conservation, causality, KV accounting."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from servesim.cost.memory import kv_bytes_per_token
from servesim.sim.cluster import run
from servesim.sim.testing import ListWorkload, linear_step_cost, placeholder_workload
from servesim.specs.config import load_config

POLICIES = ("sarathi", "vllm", "prefill_first", "orca", "static")


def _cfg(policy, prefill, decode, bw, streaming, ff, reserve=False, tokens=512):
    def pool(role, n):
        sched = {"policy": policy, "max_num_seqs": 8, "max_num_batched_tokens": tokens}
        return {
            "role": role,
            "hardware": "h100-sxm",
            "instances": n,
            "scheduler": dict(sched, reserve_output=reserve),
        }

    return load_config(
        {
            "model": "llama-3.1-8b",
            "deployment": {
                "pools": [pool("prefill", prefill), pool("decode", decode)],
                "kv_link": {"bandwidth_GBps": bw, "latency_us": 5.0, "streaming": streaming},
            },
            "workload": placeholder_workload(),
            "sim": {"fast_forward": ff},
        }
    )


requests = st.lists(
    st.tuples(st.floats(0, 2.0), st.integers(1, 300), st.integers(1, 80)), min_size=1, max_size=40
)


@settings(max_examples=40, deadline=None)
@given(
    requests,
    st.sampled_from(POLICIES),
    st.integers(1, 2),
    st.integers(1, 3),
    st.sampled_from([0.5, 5.0, 500.0]),
    st.booleans(),
    st.booleans(),
    st.sampled_from([16, 512]),  # a small budget chunks recompute prefills on decode instances
)
def test_pd_random_workload_conserves_requests_tokens_and_blocks(
    specs, policy, p, d, bw, stream, reserve, tokens
):
    cfg = _cfg(policy, p, d, bw, stream, True, reserve, tokens)
    bad = []

    def hook(inst):
        if not inst.kv.check():
            bad.append(inst.id)

    step = linear_step_cost(base_s=1e-3, prefill_token_s=1e-5, decode_seq_s=1e-4)
    raw = run(cfg, workload=ListWorkload(specs), step_fn=step, kv_blocks=30, step_hook=hook)
    req, steps, t = raw.requests, raw.steps, raw.transfers
    assert not bad
    # every request finishes once; every token is emitted once, by one pool or the other
    assert sorted(req["request_id"].tolist()) == list(range(len(specs)))
    assert int(steps["new_tokens"].sum()) == int(req["output_tokens"].sum())
    # causality across pools
    assert np.all(req["arrival_s"] <= req["scheduled_s"])
    assert np.all(req["scheduled_s"] < req["first_token_s"])
    assert np.all(req["first_token_s"] <= req["finish_s"])
    # every request prefills in the prefill pool; those with more tokens decode in the decode pool
    assert np.all(req["prefill_instance"] < p)
    multi = req["output_tokens"] > 1
    assert np.all(req["instance"][multi] >= p)
    assert len(t["request_id"]) == int(multi.sum())
    per_token = kv_bytes_per_token(cfg.model, cfg.dtypes)
    prompt = dict(zip(req["request_id"].tolist(), req["prompt_tokens"].tolist()))
    assert np.array_equal(t["bytes"], [prompt[i] * per_token for i in t["request_id"].tolist()])
    assert np.all(t["end_s"] >= t["start_s"]) and np.all(t["decode_queue_s"] >= 0)


@settings(max_examples=25, deadline=None)
@given(requests, st.sampled_from(POLICIES), st.integers(1, 3), st.booleans())
def test_pd_random_workload_fast_forward_equals_plain_loop(specs, policy, d, stream):
    step = linear_step_cost(base_s=1e-3, prefill_token_s=1e-5, decode_seq_s=1e-4)
    out = [
        run(
            _cfg(policy, 1, d, 5.0, stream, ff),
            workload=ListWorkload(specs),
            step_fn=step,
            kv_blocks=30,
        )
        for ff in (True, False)
    ]
    for k in out[0].requests:
        assert np.array_equal(out[0].requests[k], out[1].requests[k]), k
