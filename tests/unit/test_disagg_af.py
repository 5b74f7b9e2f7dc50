"""Attention/FFN disaggregation in the engine: limits against the colocated step and run."""

from __future__ import annotations

import numpy as np
import pytest

from servesim.cost.afstep import af_step_cost
from servesim.cost.step import Aggregates, CostContext, step_cost
from servesim.sim.cluster import run
from servesim.sim.testing import ListWorkload, placeholder_workload
from servesim.specs.config import Parallelism, load_config
from servesim.specs.dtypes import parse_dtypes
from servesim.specs.hardware import load_hardware
from servesim.specs.model import load_model

DSV3_FFN = {"tp": 1, "dp_attn": 8, "ep": 8}


def _ctx(model, hw, par, dtype="fp8"):
    return CostContext(
        load_model(model),
        load_hardware(hw),
        Parallelism(**par),
        parse_dtypes(dtype, "t", "dtype"),
        2e-3,
    )


def _af(ctx, agg, m=1, bw=None, ep=1, share=1.0):
    def cost(role):
        return lambda a: step_cost(ctx, role, Aggregates(*a))

    return af_step_cost(
        cost("attention"), cost("ffn"), agg, model=ctx.model, dtypes=ctx.dtypes, micro_batches=m,
        share=share, attention_devices=8, ffn_devices=8, bandwidth_GBps=bw, latency_us=5.0,
        attention_overhead_s=ctx.overhead_s, ffn_overhead_s=ctx.overhead_s, ffn_ep=ep,
    )  # fmt: skip


AGGS = [(0, 0, 0, 0, 64, 64 * 1500, 64), (512, 2, 70000, 0, 30, 30000, 32)]


@pytest.mark.parametrize(
    "model,hw,par",
    [("deepseek-v3", "h200-sxm", {"tp": 8}), ("llama-3.1-70b", "h100-sxm", {"tp": 4})],
)
@pytest.mark.parametrize("agg", AGGS)
def test_af_step_free_link_one_micro_batch_equals_colocated_step(model, hw, par, agg):
    ctx = _ctx(model, hw, par)
    a, f, af = _af(ctx, agg)
    co = step_cost(ctx, "colocated", Aggregates(*agg))
    assert a.seconds == pytest.approx(co.seconds, rel=1e-12)
    assert a.flops + f.flops == pytest.approx(co.flops, rel=1e-12)
    assert af.attention_busy + af.ffn_busy == pytest.approx(1.0)


@pytest.mark.parametrize("agg", AGGS)
def test_af_step_expert_parallel_free_link_drops_only_the_all_to_all(agg):
    # with EP the attention side sends tokens straight to the expert ranks: the FFN pool's own
    # dispatch/combine all-to-all is replaced by the (here free) transfer
    ctx = _ctx("deepseek-v3", "h200-sxm", DSV3_FFN)
    a, _, _ = _af(ctx, agg, ep=8)
    co = step_cost(ctx, "colocated", Aggregates(*agg))
    ffn = step_cost(ctx, "ffn", Aggregates(decode_seqs=agg[0] + agg[4]))
    assert ffn.comm_s > 0
    assert a.seconds == pytest.approx(co.seconds - ffn.comm_s, rel=1e-12)


def test_af_step_slow_link_more_micro_batches_hide_transfer():
    # a slow link dominates: ping-pong hides it (expert weights are still read once per
    # micro-batch, so on a fast link more micro-batches cost time instead)
    ctx = _ctx("deepseek-v3", "h200-sxm", DSV3_FFN)
    agg = (0, 0, 0, 0, 256, 256 * 2000, 256)
    one, three = _af(ctx, agg, 1, 1.0, 8), _af(ctx, agg, 3, 1.0, 8)
    assert one[2].bound == "latency"
    assert three[0].seconds < one[0].seconds
    assert three[2].link_busy > one[2].link_busy


def _af_cfg(a=1, f=1, m=1, link=None, att_par=None, ff=True):
    dep = {
        "pools": [
            {"role": "attention", "hardware": "h200-sxm", "instances": a,
             "parallelism": att_par or DSV3_FFN, "micro_batches": m},
            {"role": "ffn", "hardware": "h200-sxm", "instances": f, "parallelism": DSV3_FFN},
        ]
    }  # fmt: skip
    if link is not None:
        dep["af_link"] = link
    return _cfg(dep, ff)


def _cfg(dep, ff=True):
    return load_config(
        {
            "model": "deepseek-v3",
            "dtype": "fp8",
            "deployment": dep,
            "workload": placeholder_workload(),
            "sim": {"fast_forward": ff},
        }
    )


def _specs(n=40, rate=4.0, seed=2):
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.exponential(1.0 / rate, n))
    return [
        (float(t[i]), int(rng.integers(100, 3000)), int(rng.integers(2, 200))) for i in range(n)
    ]


def test_af_run_free_link_one_micro_batch_matches_colocated_run():
    specs = _specs()
    tp8 = {"tp": 8}
    dep = {
        "pools": [
            {"role": "attention", "hardware": "h200-sxm", "parallelism": tp8},
            {"role": "ffn", "hardware": "h200-sxm", "parallelism": tp8},
        ],
        "af_link": {"bandwidth_GBps": 1e15, "latency_us": 0.0},
    }
    af = run(_cfg(dep), workload=ListWorkload(specs))
    co_cfg = _cfg({"pools": [{"role": "colocated", "hardware": "h200-sxm", "parallelism": tp8}]})
    co = run(co_cfg, workload=ListWorkload(specs))
    for key in ("first_token_s", "finish_s"):
        np.testing.assert_allclose(af.requests[key], co.requests[key], rtol=1e-9)


def test_af_run_conserves_tokens_and_logs_ffn_busy_rows():
    from servesim.accounting.metrics import summarize

    cfg = _af_cfg(a=2, f=1, m=2, link={"bandwidth_GBps": 50.0, "latency_us": 10.0},
                  att_par={"tp": 8})  # fmt: skip
    raw = run(cfg, workload=ListWorkload(_specs(60, 8.0)))
    req, steps = raw.requests, raw.steps
    assert len(req["request_id"]) == 60
    assert int(steps["new_tokens"].sum()) == int(req["output_tokens"].sum())
    ffn_ids = [i.instance_id for i in raw.instances if i.role == "ffn"]
    assert ffn_ids == [2]
    ffn_rows = np.isin(steps["instance"], ffn_ids)
    assert ffn_rows.any() and steps["decode_seqs"][ffn_rows].sum() == 0
    s = summarize(raw, cfg)
    assert 0 < s["pool.ffn.utilisation"] <= 1.0 and 0 < s["pool.attention.utilisation"] <= 1.0
    assert s["pool.ffn.batch_size_mean"] > s["pool.attention.batch_size_mean"] / 2


def test_af_run_fast_forward_same_requests_as_plain_loop():
    specs = _specs(40, 6.0)
    link = {"bandwidth_GBps": 50.0, "latency_us": 10.0}
    a = run(_af_cfg(a=2, m=2, link=link, ff=True), workload=ListWorkload(specs))
    b = run(_af_cfg(a=2, m=2, link=link, ff=False), workload=ListWorkload(specs))
    for k in a.requests:
        np.testing.assert_array_equal(a.requests[k], b.requests[k], err_msg=k)


def test_af_run_fast_forward_identical_step_log_with_several_ffn_instances():
    # FFN rows go to the FFN instances paired with the attention instance, not round-robin in
    # the order steps are logged (which fast-forwarding changes)
    specs = _specs(30, 6.0)
    link = {"bandwidth_GBps": 50.0, "latency_us": 10.0}
    a = run(_af_cfg(a=2, f=2, m=2, link=link, ff=True), workload=ListWorkload(specs))
    b = run(_af_cfg(a=2, f=2, m=2, link=link, ff=False), workload=ListWorkload(specs))
    for k in a.steps:
        np.testing.assert_array_equal(a.steps[k], b.steps[k], err_msg=k)


def test_af_run_more_ffn_than_attention_instances_keeps_every_ffn_instance_busy():
    specs = _specs(20, 6.0)
    raw = run(_af_cfg(a=1, f=2, m=1, link={"bandwidth_GBps": 50.0}), workload=ListWorkload(specs))
    s = raw.steps
    ffn = [i.instance_id for i in raw.instances if i.role == "ffn"]
    att = [i.instance_id for i in raw.instances if i.role == "attention"]
    busy = [float(s["duration_s"][s["instance"] == j].sum()) for j in ffn]
    assert busy[0] > 0 and busy[0] == pytest.approx(busy[1])
    # both FFN instances work on every attention step, each on half of its tokens
    rows = [int((s["instance"] == j).sum()) for j in ffn]
    assert rows == [int((s["instance"] == att[0]).sum())] * 2


def test_af_prefill_attention_ffn_layout_hands_off_to_attention_pool():
    dep = {
        "pools": [
            {"role": "prefill", "hardware": "h200-sxm", "parallelism": DSV3_FFN},
            {
                "role": "attention",
                "hardware": "h200-sxm",
                "parallelism": {"tp": 8},
                "micro_batches": 2,
            },
            {"role": "ffn", "hardware": "h200-sxm", "parallelism": DSV3_FFN},
        ],
        "kv_link": {"bandwidth_GBps": 50.0},
    }
    raw = run(_cfg(dep), workload=ListWorkload(_specs(20, 4.0)))
    req = raw.requests
    assert np.all(req["prefill_instance"] == 0) and np.all(req["instance"] == 1)
    assert len(raw.transfers["request_id"]) == 20


def test_af_moe_load_zipf_slows_expert_parallel_step():
    from servesim.sim.disagg import moe_imbalance_of
    from servesim.specs.config import DeploymentSpec

    if "moe_load" not in DeploymentSpec.__dataclass_fields__:
        pytest.skip("the deployment.moe_load config key is not in specs/config.py yet")

    base = {"pools": [{"role": "colocated", "hardware": "h200-sxm", "parallelism": DSV3_FFN}]}
    uni = _cfg(base)
    zipf = _cfg(dict(base, moe_load={"distribution": "zipf", "zipf_s": 1.0}))
    assert moe_imbalance_of(uni, uni.deployment.pools[0]) == 1.0
    factor = moe_imbalance_of(zipf, zipf.deployment.pools[0])
    assert factor > 1.0
    ctx_u = _ctx("deepseek-v3", "h200-sxm", DSV3_FFN)
    ctx_z = ctx_u._replace(moe_imbalance=factor)
    agg = Aggregates(decode_seqs=2048, decode_ctx=2048 * 1000, sampled=2048)
    assert step_cost(ctx_z, "colocated", agg).seconds > step_cost(ctx_u, "colocated", agg).seconds
