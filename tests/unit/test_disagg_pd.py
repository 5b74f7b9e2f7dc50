"""Prefill/decode disaggregation: hand-off, KV link, TTFT accounting, limits, queueing."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from servesim.cost.memory import kv_bytes_per_token
from servesim.sim.cluster import run
from servesim.sim.testing import ListWorkload, linear_step_cost, placeholder_workload
from servesim.specs.config import load_config


def pd_cfg(
    *,
    prefill=1,
    decode=1,
    link=None,
    model="llama-3.1-8b",
    seqs=256,
    decode_seqs=None,
    tp=1,
    ff=True,
    policy="sarathi",
):
    def pool(role, n, s):
        return {
            "role": role,
            "hardware": "h100-sxm",
            "instances": n,
            "parallelism": {"tp": tp},
            "scheduler": {"policy": policy, "max_num_seqs": s, "max_num_batched_tokens": 8192},
        }

    dep = {
        "pools": [pool("prefill", prefill, seqs), pool("decode", decode, decode_seqs or seqs)],
    }
    if link is not None:
        dep["kv_link"] = link
    return load_config(
        {
            "model": model,
            "deployment": dep,
            "workload": placeholder_workload(),
            "sim": {"fast_forward": ff},
        }
    )


def colo_cfg(model="llama-3.1-8b", tp=1):
    return load_config(
        {
            "model": model,
            "deployment": {
                "pools": [{"role": "colocated", "hardware": "h100-sxm", "parallelism": {"tp": tp}}]
            },
            "workload": placeholder_workload(),
        }
    )


def spaced(n, gap=5.0, prompt=(100, 2000), output=(2, 40), seed=3):
    rng = np.random.default_rng(seed)
    return [(i * gap, int(rng.integers(*prompt)), int(rng.integers(*output))) for i in range(n)]


def poisson(n, rate, prompt=(50, 400), output=(1, 60), seed=1):
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.exponential(1.0 / rate, n))
    return [(float(t[i]), int(rng.integers(*prompt)), int(rng.integers(*output))) for i in range(n)]


LINK = {"bandwidth_GBps": 50.0, "latency_us": 20.0}


def test_pd_kv_bytes_sent_equal_prompt_tokens_times_kv_bytes_per_token():
    cfg = pd_cfg(link=LINK)
    raw = run(cfg, workload=ListWorkload(poisson(40, 4.0, output=(2, 30))))
    t = raw.transfers
    req = raw.requests
    prompt = dict(zip(req["request_id"].tolist(), req["prompt_tokens"].tolist()))
    per_token = kv_bytes_per_token(cfg.model, cfg.dtypes)
    expected = np.array([prompt[i] * per_token for i in t["request_id"].tolist()])
    assert len(t["request_id"]) == 40
    np.testing.assert_array_equal(t["bytes"], expected)


def test_pd_ttft_at_least_prefill_plus_transfer_per_request():
    base, per_tok = 2e-3, 1e-5
    cfg = pd_cfg(link=LINK, tp=2)
    raw = run(
        cfg,
        workload=ListWorkload(poisson(60, 20.0, output=(2, 30))),
        step_fn=linear_step_cost(base_s=base, prefill_token_s=per_tok),
    )
    req = raw.requests
    ttft = req["first_token_s"] - req["arrival_s"]
    nbytes = req["prompt_tokens"] * kv_bytes_per_token(cfg.model, cfg.dtypes)
    wire = nbytes / (50e9 * 2) + 20e-6  # two TP shards send in parallel
    prefill_min = base + per_tok * req["prompt_tokens"]
    assert np.all(req["kv_transfer_s"] >= wire * (1 - 1e-12))
    assert np.all(ttft >= prefill_min + req["kv_transfer_s"] - 1e-12)
    # TTFT is counted at the end of the transfer: prefill end + transfer
    assert np.all(
        req["first_token_s"] - req["kv_transfer_s"] >= req["scheduled_s"] + prefill_min - 1e-12
    )


def test_pd_infinite_link_low_load_ttft_equals_colocated_prefill():
    specs = spaced(12)
    pd = run(pd_cfg(link={"bandwidth_GBps": 1e15, "latency_us": 0.0}), workload=ListWorkload(specs))
    co = run(colo_cfg(), workload=ListWorkload(specs))
    ttft_pd = pd.requests["first_token_s"] - pd.requests["arrival_s"]
    ttft_co = co.requests["first_token_s"] - co.requests["arrival_s"]
    np.testing.assert_allclose(ttft_pd, ttft_co, rtol=1e-9, atol=1e-12)


def test_pd_one_output_token_finishes_in_prefill_pool_without_transfer():
    raw = run(pd_cfg(link=LINK), workload=ListWorkload([(0.0, 100, 1), (0.1, 50, 3)]))
    req = raw.requests
    assert req["instance"].tolist()[0] == 0 and req["kv_transfer_s"][0] == 0.0
    assert req["instance"].tolist()[1] == 1 and req["prefill_instance"].tolist()[1] == 0
    assert raw.transfers["request_id"].tolist() == [1]


def test_pd_overlapping_transfers_queue_fifo_on_link():
    # two prompts finish in the same prefill step: the second waits for the first's bytes
    cfg = pd_cfg(link={"bandwidth_GBps": 1.0, "latency_us": 0.0})
    raw = run(cfg, workload=ListWorkload([(0.0, 500, 4), (0.0, 500, 4)]))
    t = raw.transfers
    busy = t["busy_s"]
    assert t["wait_s"][0] == 0.0
    assert t["wait_s"][1] == pytest.approx(busy[0])
    assert t["end_s"][1] - t["end_s"][0] == pytest.approx(busy[1])


def test_pd_streaming_link_hides_transfer_behind_prefill():
    specs = [(0.0, 4000, 4)]
    step = linear_step_cost(base_s=1e-3, prefill_token_s=1e-4)
    plain = run(pd_cfg(link={"bandwidth_GBps": 5.0}), workload=ListWorkload(specs), step_fn=step)
    stream = run(
        pd_cfg(link={"bandwidth_GBps": 5.0, "streaming": True}),
        workload=ListWorkload(specs),
        step_fn=step,
    )
    ser = plain.transfers["busy_s"][0]
    layers = 32  # llama-3.1-8b
    assert plain.requests["kv_transfer_s"][0] == pytest.approx(ser)
    # the 0.401 s prefill step hides all but the last layer's share of the 0.1 s transfer
    assert stream.requests["kv_transfer_s"][0] == pytest.approx(ser / layers)


def test_pd_starved_decode_queues_in_decode_not_prefill():
    specs = poisson(80, 40.0, prompt=(50, 200), output=(50, 80))
    step = linear_step_cost(base_s=1e-3, prefill_token_s=1e-6, decode_seq_s=1e-4)
    raw = run(pd_cfg(link=LINK, decode_seqs=2), workload=ListWorkload(specs), step_fn=step)
    req = raw.requests
    prefill_queue = float(np.mean(req["scheduled_s"] - req["arrival_s"]))
    decode_queue = float(np.mean(raw.transfers["decode_queue_s"]))
    assert decode_queue > 0.2
    assert prefill_queue < 0.01


def test_pd_starved_prefill_queues_in_prefill_not_decode():
    specs = poisson(80, 40.0, prompt=(1000, 2000), output=(2, 10))
    step = linear_step_cost(base_s=1e-3, prefill_token_s=1e-4, decode_seq_s=1e-5)
    raw = run(pd_cfg(link=LINK, decode=2), workload=ListWorkload(specs), step_fn=step)
    req = raw.requests
    prefill_queue = float(np.mean(req["scheduled_s"] - req["arrival_s"]))
    decode_queue = float(np.max(raw.transfers["decode_queue_s"]))
    assert prefill_queue > 0.5
    assert decode_queue == 0.0


def test_pd_fast_forward_same_requests_as_plain_loop():
    specs = poisson(120, 30.0, output=(1, 120))
    step = linear_step_cost(base_s=1e-3, prefill_token_s=2e-6, decode_seq_s=5e-5)
    a = run(
        pd_cfg(link=LINK, decode=2, ff=True),
        workload=ListWorkload(specs),
        step_fn=step,
        kv_blocks=40,
    )
    b = run(
        pd_cfg(link=LINK, decode=2, ff=False),
        workload=ListWorkload(specs),
        step_fn=step,
        kv_blocks=40,
    )
    for k in a.requests:
        np.testing.assert_array_equal(a.requests[k], b.requests[k], err_msg=k)
    assert a.requests["preemptions"].sum() > 0


def test_pd_real_cost_summary_has_per_pool_and_transfer_keys():
    from servesim.accounting.metrics import summarize

    cfg = pd_cfg(link=LINK)
    raw = run(cfg, workload=ListWorkload(poisson(30, 5.0, output=(2, 20))))
    s = summarize(raw, cfg)
    assert s["completed"] == 30
    assert s["pool.prefill.requests"] == 30 and s["pool.decode.requests"] == 30
    assert s["kv_transfer_ms_mean"] > 0


def test_pd_heterogeneous_pools_run_each_on_its_own_hardware():
    cfg = load_config(
        {
            "model": "llama-3.1-8b",
            "deployment": {
                "pools": [
                    {"role": "prefill", "hardware": "h100-sxm", "instances": 2},
                    {"role": "decode", "hardware": "h200-sxm", "instances": 1},
                ],
            },
            "workload": placeholder_workload(),
        }
    )
    raw = run(cfg, workload=ListWorkload(poisson(30, 10.0, output=(2, 20))))
    hw = {i.instance_id: (i.role, i.hardware) for i in raw.instances}
    assert hw == {0: ("prefill", "h100-sxm"), 1: ("prefill", "h100-sxm"), 2: ("decode", "h200-sxm")}
    assert set(raw.requests["prefill_instance"].tolist()) == {0, 1}
    assert set(raw.requests["instance"].tolist()) == {2}
    # no kv_link given: the prefill hardware's scale-out NIC (50 GB/s per GPU on H100)
    t = raw.transfers
    assert np.allclose(t["busy_s"], t["bytes"] / 50e9)


def test_pd_handoff_skips_decode_instance_without_a_free_seat():
    # decode instances seat one request each; round robin sends the third request to instance 0,
    # still busy with a long request, while instance 1 is free: it must go to instance 1
    cfg = pd_cfg(link=LINK, decode=2, decode_seqs=1)
    cfg = dataclasses.replace(
        cfg, deployment=dataclasses.replace(cfg.deployment, router="round_robin")
    )
    specs = [(0.0, 100, 400), (0.01, 100, 2), (0.1, 100, 2)]
    step = linear_step_cost(base_s=1e-3, prefill_token_s=2e-6, decode_seq_s=5e-5)
    raw = run(cfg, workload=ListWorkload(specs), step_fn=step)
    t = raw.transfers
    assert list(t["decode_instance"]) == [1, 2, 2]  # ids: prefill 0, decode 1 and 2
    assert float(np.max(t["decode_queue_s"])) == 0.0


def test_pd_prefill_kv_held_until_transfer_ends():
    # the prefill instance's KV holds one 150-token prompt (10 blocks); over a slow link the
    # second prompt can start only once the first one's KV has left (the decode side reads it
    # from the prefill instance's memory)
    slow = {"bandwidth_GBps": 0.02, "latency_us": 0.0}  # ~1 s for 150 x 131072 B
    specs = [(0.0, 150, 5), (0.001, 150, 5)]
    step = linear_step_cost(base_s=1e-3, prefill_token_s=1e-5, decode_seq_s=1e-4)
    raw = run(pd_cfg(link=slow), workload=ListWorkload(specs), step_fn=step, kv_blocks=10)
    r, t = raw.requests, raw.transfers
    assert t["end_s"][0] > 0.9
    assert r["scheduled_s"][1] >= t["end_s"][0]
    pre = raw.steps["instance"] == 0
    assert int(raw.steps["kv_used_blocks"][pre].max()) == 10


def test_pd_recompute_preempting_landed_decode_keeps_kv_accounting():
    # on a decode instance a recompute prefill (after a preemption) can be older than a request
    # that landed later; when it preempts that whole decode set after the decode growth was
    # allocated, the growth of the next request to join must still be allocated (found by fuzzing:
    # the instance used to end with one block more free than it has)
    from servesim.sim.cluster import Cluster

    specs = [
        (0.2292, 161, 65), (0.2587, 62, 37), (0.2680, 195, 55), (0.3091, 116, 67),
        (0.3538, 181, 14), (0.4479, 110, 52), (0.4949, 65, 57), (0.5390, 199, 47),
    ]  # fmt: skip
    cfg = pd_cfg(link={"bandwidth_GBps": 5.0, "latency_us": 5.0}, seqs=4)
    cfg = dataclasses.replace(
        cfg,
        deployment=dataclasses.replace(
            cfg.deployment,
            pools=tuple(
                dataclasses.replace(
                    p, scheduler=dataclasses.replace(p.scheduler, max_num_batched_tokens=16)
                )
                for p in cfg.deployment.pools
            ),
        ),
    )
    step = linear_step_cost(base_s=1e-3, prefill_token_s=2e-6, decode_seq_s=5e-5)
    cl = Cluster(cfg, step_fn=step, workload=ListWorkload(specs), kv_blocks=17)
    raw = cl.run()
    assert raw.requests["preemptions"].sum() > 0
    for inst in cl.instances:
        assert inst.kv.free == inst.kv.total and inst.kv.used == 0 and inst.kv.check()
