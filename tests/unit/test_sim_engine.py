"""The colocated engine on hand-built workloads with an analytic step cost."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from servesim.sim.cluster import Cluster, run
from servesim.sim.testing import (
    ClientSpec,
    ListWorkload,
    colocated_config,
    linear_step_cost,
    placeholder_workload,
)
from servesim.specs.common import SpecError
from servesim.specs.config import load_config


def make_cfg(
    policy="sarathi",
    seqs=256,
    tokens=8192,
    instances=1,
    router="least_loaded",
    block=16,
    ff=True,
    prefix=False,
    **sched,
):
    return colocated_config(
        instances=instances,
        router=router,
        ff=ff,
        policy=policy,
        max_num_seqs=seqs,
        max_num_batched_tokens=tokens,
        block_size=block,
        enable_prefix_caching=prefix,
        **sched,
    )


def poisson_specs(n, rate, prompt=(50, 400), output=(1, 60), seed=1):
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.exponential(1 / rate, n))
    p = rng.integers(*prompt, n)
    o = rng.integers(*output, n)
    return [(float(a), int(b), int(c)) for a, b, c in zip(t, p, o)]


COST = linear_step_cost(base_s=2e-3, prefill_token_s=2e-5, decode_seq_s=1e-4, ctx_token_s=1e-7)


def test_engine_simple_request_timestamps_match_hand_computation():
    # one request, prompt 100 in one step, then 4 decode steps: 5 steps in all
    raw = run(make_cfg(), step_fn=COST, workload=ListWorkload([(1.0, 100, 5)]), kv_blocks=100)
    r = raw.requests
    prefill = 2e-3 + 2e-5 * 100
    assert r["scheduled_s"][0] == 1.0
    assert r["first_token_s"][0] == pytest.approx(1.0 + prefill)
    decode = [2e-3 + 1e-4 + 1e-7 * (100 + k) for k in range(1, 5)]
    assert r["finish_s"][0] == pytest.approx(1.0 + prefill + sum(decode))
    assert list(raw.steps["new_tokens"]) == [1, 1, 1, 1, 1]
    assert list(raw.steps["decode_seqs"]) == [0, 1, 1, 1, 1]


def test_engine_chunked_prefill_splits_prompt_under_budget():
    raw = run(
        make_cfg(tokens=64, seqs=64),
        step_fn=COST,
        workload=ListWorkload([(0.0, 150, 2)]),
        kv_blocks=100,
    )
    assert list(raw.steps["prefill_tokens"]) == [64, 64, 22, 0]
    assert raw.requests["first_token_s"][0] == pytest.approx(
        raw.steps["start_s"][2] + raw.steps["duration_s"][2]
    )


@pytest.mark.parametrize("policy", ["sarathi", "vllm", "prefill_first", "orca", "static"])
def test_engine_every_policy_conserves_requests_and_tokens(policy):
    specs = poisson_specs(80, 40.0)
    raw = run(
        make_cfg(policy, seqs=16, tokens=512),
        step_fn=COST,
        workload=ListWorkload(specs),
        kv_blocks=120,
    )
    r, s = raw.requests, raw.steps
    assert len(r["request_id"]) == 80
    assert int(s["new_tokens"].sum()) == int(r["output_tokens"].sum())
    assert int(s["prefill_tokens"].sum()) >= int((r["prompt_tokens"] - r["cached_tokens"]).sum())
    assert np.all(r["arrival_s"] <= r["scheduled_s"])
    assert np.all(r["scheduled_s"] <= r["first_token_s"])
    assert np.all(r["first_token_s"] <= r["finish_s"])


def test_engine_vllm_prefill_first_never_mixes_prefill_and_decode():
    raw = run(
        make_cfg("vllm", seqs=16, tokens=1024),
        step_fn=COST,
        workload=ListWorkload(poisson_specs(60, 30.0)),
        kv_blocks=500,
    )
    s = raw.steps
    assert not np.any((s["prefill_tokens"] > 0) & (s["decode_seqs"] > 0))


def test_engine_prefill_first_chunks_prompts_and_pauses_decodes():
    # SGLang's default: a long prompt is chunked under the budget, and while its chunks run the
    # decode of the earlier request pauses (no mixed batches)
    specs = [(0.0, 10, 30), (0.01, 200, 5)]
    raw = run(make_cfg("prefill_first", seqs=8, tokens=64), step_fn=COST,
              workload=ListWorkload(specs), kv_blocks=100)  # fmt: skip
    s = raw.steps
    assert not np.any((s["prefill_tokens"] > 0) & (s["decode_seqs"] > 0))
    assert sorted(s["prefill_tokens"][s["prefill_tokens"] > 0].tolist()) == [8, 10, 64, 64, 64]
    assert int(s["new_tokens"].sum()) == 35


def test_engine_orca_decodes_count_against_the_token_budget():
    # one request decoding, then two 32-token prompts under a 64-token budget: the decode takes
    # one token, so only one prompt fits beside it (TensorRT-LLM counts generation tokens too)
    specs = [(0.0, 10, 50), (0.05, 32, 5), (0.05, 32, 5)]
    raw = run(make_cfg("orca", seqs=8, tokens=64), step_fn=COST, workload=ListWorkload(specs),
              kv_blocks=100)  # fmt: skip
    s = raw.steps
    assert np.all(s["prefill_tokens"] + s["decode_seqs"] <= 64)
    assert 32 in set(s["prefill_tokens"][s["decode_seqs"] == 1].tolist())


def test_engine_static_admits_only_into_an_empty_instance():
    specs = [(0.0, 20, 10), (0.0, 20, 3), (0.001, 20, 2)]
    raw = run(make_cfg("static", seqs=4), step_fn=COST, workload=ListWorkload(specs), kv_blocks=100)
    r = raw.requests
    # the third request arrives while the first batch runs: it starts only after the longest finished
    assert r["scheduled_s"][2] >= r["finish_s"][0]
    assert r["preemptions"].sum() == 0


def test_engine_preempts_exactly_when_kv_runs_out():
    # 4 requests admitted together, equal outputs: KV peaks on the last step at sum(blocks(P+O-1))
    specs = [(0.0, 40, 30), (0.0, 70, 30), (0.0, 33, 30), (0.0, 16, 30)]
    peak = sum(-(-(p + o - 1) // 16) for _, p, o in specs)
    ok = run(make_cfg(), step_fn=COST, workload=ListWorkload(specs), kv_blocks=peak)
    assert ok.requests["preemptions"].sum() == 0
    assert ok.steps["kv_used_blocks"].max() == peak
    short = run(make_cfg(), step_fn=COST, workload=ListWorkload(specs), kv_blocks=peak - 1)
    assert short.requests["preemptions"].sum() >= 1
    # the newest admitted request is the one preempted first
    assert short.requests["preemptions"][3] >= 1


@pytest.mark.parametrize("policy", ["sarathi", "prefill_first", "orca", "vllm"])
def test_engine_preemption_step_admits_nothing_new(policy):
    # record, for every batch, whether forming it preempted and whether it admitted a request
    specs = [(0.0, 16, 40), (0.0, 16, 40), (0.05, 16, 5), (0.06, 16, 5)]
    cl = Cluster(make_cfg(policy, seqs=8, tokens=64), step_fn=COST, workload=ListWorkload(specs),
                 kv_blocks=5)  # fmt: skip
    seen = []
    for inst in cl.instances:
        sched = inst.sched

        class Spy:
            def next_batch(self, i, sched=sched):
                before = i.next_seq
                batch = sched.next_batch(i)
                if batch is not None:
                    seen.append((batch.preempted, i.next_seq - before, i.kv.check()))
                return batch

        inst.sched = Spy()
    raw = cl.run()
    assert raw.requests["preemptions"].sum() >= 1
    assert len(raw.requests["request_id"]) == 4
    assert all(ok for _, _, ok in seen)
    assert any(p for p, _, _ in seen)
    assert all(admitted == 0 for p, admitted, _ in seen if p)


def test_engine_kv_blocks_all_free_at_end():
    specs = poisson_specs(50, 30.0)
    cl = Cluster(make_cfg(prefix=True), step_fn=COST, workload=ListWorkload(specs), kv_blocks=60)
    cl.run()
    for inst in cl.instances:
        assert inst.kv.used == 0
        assert inst.kv.check()
        assert inst.n_dec == 0 and inst.load == 0


def test_engine_request_too_large_for_kv_raises_spec_error_when_strict():
    # without sim.strict such a request is dropped as failed (tests/unit/test_admission.py)
    cfg = make_cfg()
    cfg = dataclasses.replace(cfg, sim=dataclasses.replace(cfg.sim, strict=True))
    with pytest.raises(SpecError, match="KV blocks"):
        run(cfg, step_fn=COST, workload=ListWorkload([(0.0, 1000, 10)]), kv_blocks=10)


def test_engine_closed_loop_never_exceeds_concurrency():
    wl = ListWorkload(poisson_specs(20, 1.0), clients=ClientSpec(4, 0.01), num_requests=60)
    raw = run(make_cfg(seqs=64), step_fn=COST, workload=wl, kv_blocks=400)
    r = raw.requests
    assert len(r["request_id"]) == 60
    events = sorted(
        [(a, 1) for a in r["arrival_s"]] + [(f, -1) for f in r["finish_s"]],
        key=lambda e: (e[0], e[1]),
    )
    level = peak = 0
    for _, d in events:
        level += d
        peak = max(peak, level)
    assert peak == 4


def test_engine_fast_forward_matches_plain_loop():
    specs = poisson_specs(120, 20.0, output=(1, 200))
    cl = Cluster(
        make_cfg(ff=True, seqs=32, tokens=256),
        step_fn=COST,
        workload=ListWorkload(specs),
        kv_blocks=150,
    )
    a = cl.run()
    assert cl.instances[0].ff_steps > len(a.steps["instance"]) // 4  # it did fast-forward
    b = run(
        make_cfg(ff=False, seqs=32, tokens=256),
        step_fn=COST,
        workload=ListWorkload(specs),
        kv_blocks=150,
    )
    for k in a.requests:
        assert np.array_equal(a.requests[k], b.requests[k]), k
    for k in a.steps:
        assert np.array_equal(a.steps[k], b.steps[k]), k


def test_engine_runs_step_log_keeps_totals():
    specs = poisson_specs(60, 10.0, output=(1, 100))
    full = run(make_cfg(), step_fn=COST, workload=ListWorkload(specs), kv_blocks=400)
    cfg = make_cfg()
    import dataclasses

    cfg = dataclasses.replace(cfg, sim=dataclasses.replace(cfg.sim, step_log="runs"))
    runs = run(cfg, step_fn=COST, workload=ListWorkload(specs), kv_blocks=400)
    assert len(runs.steps["instance"]) < len(full.steps["instance"])
    assert int(runs.steps["steps"].sum()) == len(full.steps["instance"])
    assert runs.steps["duration_s"].sum() == pytest.approx(full.steps["duration_s"].sum())
    assert int(runs.steps["new_tokens"].sum()) == int(full.steps["new_tokens"].sum())
    for k in full.requests:
        assert np.array_equal(runs.requests[k], full.requests[k])


@pytest.mark.parametrize(
    "router", ["round_robin", "least_loaded", "power_of_two", "random", "session"]
)
def test_engine_routers_spread_over_replicas(router):
    specs = [(i * 0.01, 100, 20, i % 5) for i in range(60)]
    raw = run(
        make_cfg(instances=3, router=router),
        step_fn=COST,
        workload=ListWorkload(specs),
        kv_blocks=300,
    )
    inst = raw.requests["instance"]
    assert set(np.unique(inst)) <= {0, 1, 2}
    if router == "session":
        sid = np.array([s[3] for s in specs])
        for s in range(5):
            assert len(set(inst[sid == s])) == 1
    else:
        assert len(set(inst)) >= 2
    assert [i.instance_id for i in raw.instances] == [0, 1, 2]


def test_engine_prefix_cache_serves_shared_prefix():
    shared = tuple(range(1000, 1010))  # ten 16-token blocks
    specs = [
        (i * 1.0, 200, 2, -1, shared + tuple(range(5000 + 20 * i, 5000 + 20 * i + 2)))
        for i in range(4)
    ]
    raw = run(make_cfg(prefix=True), step_fn=COST, workload=ListWorkload(specs), kv_blocks=200)
    cached = raw.requests["cached_tokens"]
    assert cached[0] == 0
    assert list(cached[1:]) == [160, 160, 160]
    assert raw.steps["prefill_tokens"].sum() == 200 + 3 * 40


def test_engine_same_seed_identical_arrays():
    cfg = make_cfg()
    specs = poisson_specs(40, 15.0)
    a = run(cfg, step_fn=COST, workload=ListWorkload(specs), kv_blocks=80)
    b = run(cfg, step_fn=COST, workload=ListWorkload(specs), kv_blocks=80)
    for k in a.requests:
        assert a.requests[k].tobytes() == b.requests[k].tobytes()
    for k in a.steps:
        assert a.steps[k].tobytes() == b.steps[k].tobytes()


def test_engine_unsupported_role_is_a_spec_error(monkeypatch):
    import servesim.sim.cluster as cluster_mod

    monkeypatch.setattr(cluster_mod, "pool_classes", lambda pools: dict(cluster_mod.POOLS))
    cfg = load_config(
        {
            "model": "llama-3.1-8b",
            "deployment": {
                "pools": [
                    {"role": "prefill", "hardware": "h100-sxm"},
                    {"role": "decode", "hardware": "h100-sxm"},
                ],
                "kv_link": {"bandwidth_GBps": 50},
            },
            "workload": placeholder_workload(),
        }
    )
    with pytest.raises(SpecError, match="not supported yet"):
        run(cfg, step_fn=COST, workload=ListWorkload([(0.0, 10, 2)]), kv_blocks=10)


def test_engine_real_cost_default_config_small_run():
    cfg = load_config(None, {"workload.num_requests": 50})
    raw = run(cfg)
    r = raw.requests
    assert len(r["request_id"]) == 50
    assert np.all(r["first_token_s"] > r["arrival_s"])
    assert raw.steps["kv_total_blocks"][0] > 1000
    assert raw.instances[0].hardware == "h100-sxm"


def test_engine_model_that_does_not_fit_is_a_spec_error():
    cfg = load_config({**_base(), "model": "llama-3.1-405b"})
    with pytest.raises(SpecError, match="does not fit"):
        run(cfg, workload=ListWorkload([(0.0, 10, 2)]))


def _base():
    return {
        "model": "llama-3.1-8b",
        "deployment": {"pools": [{"role": "colocated", "hardware": "h100-sxm"}]},
        "workload": placeholder_workload(),
    }


def test_engine_empty_prompt_is_a_spec_error():
    with pytest.raises(SpecError, match=">= 1 prompt"):
        run(make_cfg(), step_fn=COST, workload=ListWorkload([(0.0, 0, 10)]), kv_blocks=10)


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
def test_engine_profiles_run_and_trtllm_never_preempts(engine):
    specs = poisson_specs(60, 60.0, output=(20, 80))
    cfg = load_config(
        {
            **_base(),
            "deployment": {
                "pools": [
                    {"role": "colocated", "hardware": "h100-sxm", "scheduler": {"engine": engine}}
                ]
            },
        }
    )
    raw = run(cfg, step_fn=COST, workload=ListWorkload(specs), kv_blocks=60)
    assert len(raw.requests["request_id"]) == 60
    if engine == "trtllm":
        assert raw.requests["preemptions"].sum() == 0
        assert raw.steps["kv_used_blocks"].max() <= 60
