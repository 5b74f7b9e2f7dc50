"""step_cost and breakdown: times against the roofline closed forms, totals, roles, memoisation."""

from __future__ import annotations

import dataclasses

import pytest

from servesim.cost import comm, roofline
from servesim.cost.step import Aggregates, CostContext, StepCost, breakdown, step_cost
from servesim.specs.common import SpecError
from servesim.specs.config import Parallelism
from servesim.specs.dtypes import DTypes
from servesim.specs.hardware import EFFICIENCY_DEFAULTS, load_hardware
from servesim.specs.model import load_model

BF16 = DTypes()


def _ideal_efficiency(key: str, default: float) -> float:
    """Every fraction 1, every fixed cost 0, plain max instead of the smooth one, no quantisation."""
    if key.endswith("_s") or key.endswith("_wave"):
        return 0.0
    if key.endswith("_overlap"):
        return 1e3
    if key in ("compute_units",) or key.startswith("gemm_tile"):
        return default
    return 1.0


# An ideal device with round numbers, so that times are closed forms.
IDEAL = dataclasses.replace(
    load_hardware("h100-sxm"),
    name="ideal",
    tflops=(("bf16", 1000.0), ("fp8", 2000.0)),
    memory_bw_GBps=1000.0,
    efficiency=tuple((k, _ideal_efficiency(k, v)) for k, (v, _) in EFFICIENCY_DEFAULTS.items()),
)
CASES = [
    ("llama-3.1-8b", {}),
    ("llama-3.1-70b", dict(tp=4, pp=2)),
    ("deepseek-v3", dict(tp=8, ep=8)),
    ("deepseek-v3", dict(tp=4, dp_attn=4, ep=16)),
    ("gpt-oss-120b", dict(tp=2, ep=2)),
    ("llama-4-maverick", dict(tp=8)),
]
MIXED = Aggregates(
    prefill_tokens=700, prefill_seqs=2, prefill_attn=500 * 100 + 500 * 501 // 2 + 200 * 201 // 2,
    prefill_ctx=100, decode_seqs=37, decode_ctx=37 * 2100, sampled=39,
)  # fmt: skip


def _ctx(
    model="llama-3.1-8b", hw=IDEAL, overhead_s=0.0, imbalance=1.0, dtypes=BF16, **par
) -> CostContext:
    return CostContext(load_model(model), hw, Parallelism(**par), dtypes, overhead_s, imbalance)


def _op(ctx, agg, name, role="colocated"):
    return next(o for o in breakdown(ctx, role, agg) if o.name == name)


def test_step_cost_memory_bound_decode_gemm_time_is_weight_bytes_over_bandwidth():
    ctx = _ctx()
    op = _op(ctx, Aggregates(decode_seqs=1, decode_ctx=100, sampled=1), "mlp_gate_up")
    weight_bytes = 4096 * 2 * 14336 * 2
    assert op.bound == "memory"
    assert op.seconds == pytest.approx(weight_bytes / 1e12, rel=1e-3)


def test_step_cost_compute_bound_large_m_gemm_time_is_flops_over_peak():
    ctx = _ctx()
    m = 16384
    op = _op(
        ctx,
        Aggregates(prefill_tokens=m, prefill_seqs=1, prefill_attn=m * (m + 1) // 2, sampled=1),
        "mlp_down",
    )
    assert op.bound == "compute"
    assert op.seconds == pytest.approx(2 * m * 14336 * 4096 / 1e15, rel=1e-6)


def test_step_cost_gemm_bound_switches_at_ridge_point():
    # bf16 GEMM with M << K, N: intensity ~ M FLOP/byte; the ideal device's ridge is 1e15/1e12 = 1000
    ctx = _ctx()
    low = _op(ctx, Aggregates(decode_seqs=600, decode_ctx=600, sampled=0), "mlp_gate_up")
    high = _op(ctx, Aggregates(decode_seqs=1600, decode_ctx=1600, sampled=0), "mlp_gate_up")
    assert (low.bound, high.bound) == ("memory", "compute")


def test_step_cost_decode_attention_memory_bound_time_is_kv_bytes_over_bandwidth():
    ctx = _ctx()
    op = _op(ctx, Aggregates(decode_seqs=8, decode_ctx=8 * 4096, sampled=8), "attn_decode")
    assert op.bound == "memory"
    assert op.seconds == pytest.approx(op.bytes / 1e12)


def test_step_cost_uses_roofline_functions_for_every_gemm():
    ctx = _ctx(hw=load_hardware("h100-sxm"))
    op = _op(ctx, MIXED, "qkv_proj")
    assert op.seconds == roofline.gemm_time(ctx.hardware, 737, 6144, 4096, BF16).seconds


@pytest.mark.parametrize("model, par", CASES)
@pytest.mark.parametrize("role", ["colocated", "attention", "ffn"])
def test_breakdown_sums_to_step_total(model, par, role):
    ctx = _ctx(model, hw=load_hardware("h100-sxm"), overhead_s=0.003, **par)
    total = step_cost(ctx, role, MIXED)
    ops = breakdown(ctx, role, MIXED)
    assert sum(o.count * o.seconds for o in ops) + 0.003 == pytest.approx(total.seconds, rel=1e-12)
    parts = total.compute_s + total.memory_s + total.comm_s + total.overhead_s
    assert parts == pytest.approx(total.seconds, rel=1e-12)
    assert total.devices == par.get("tp", 1) * par.get("pp", 1) * par.get("dp_attn", 1)


@pytest.mark.parametrize("model, par", CASES)
def test_step_cost_attention_plus_ffn_equals_colocated(model, par):
    ctx = _ctx(model, hw=load_hardware("h100-sxm"), overhead_s=0.001, **par)
    col, att, ffn = (step_cost(ctx, r, MIXED) for r in ("colocated", "attention", "ffn"))
    assert att.seconds + ffn.seconds - 0.001 == pytest.approx(col.seconds, rel=1e-9)
    assert att.flops + ffn.flops == pytest.approx(col.flops, rel=1e-9)


def test_step_cost_flops_all_devices():
    ctx1, ctx4 = _ctx(), _ctx(tp=4)
    agg = Aggregates(decode_seqs=64, decode_ctx=64 * 500, sampled=64)
    # TP splits the same work over 4 devices; the total is unchanged (no replicated GEMMs in Llama)
    assert step_cost(ctx4, "colocated", agg).flops == pytest.approx(
        step_cost(ctx1, "colocated", agg).flops, rel=1e-9
    )
    assert (
        step_cost(ctx4, "colocated", agg).comm_bytes
        > 0
        == step_cost(ctx1, "colocated", agg).comm_bytes
    )


def test_step_cost_empty_batch_is_overhead_only():
    ctx = _ctx(overhead_s=0.002)
    assert step_cost(ctx, "decode", Aggregates()) == StepCost(
        0.002, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.002, 1
    )


def test_step_cost_memoised_and_equal_for_equal_contexts():
    agg = Aggregates(decode_seqs=3, decode_ctx=300, sampled=3)
    a, b = _ctx(), _ctx()
    assert step_cost(a, "colocated", agg) is step_cost(a, "colocated", agg)
    assert step_cost(a, "colocated", agg) == step_cost(b, "colocated", agg)


def test_step_cost_moe_imbalance_slows_experts_only_with_ep():
    # 65536 tokens x top-8 over 256 experts: 2048 rows per expert, compute bound on the ideal device
    agg = Aggregates(prefill_tokens=65536, prefill_seqs=1, prefill_attn=1, sampled=1)
    base = _op(_ctx("deepseek-v3", tp=8, ep=8), agg, "moe_experts_gate_up", "ffn")
    skew = _op(_ctx("deepseek-v3", tp=8, ep=8, imbalance=2.0), agg, "moe_experts_gate_up", "ffn")
    assert skew.seconds == pytest.approx(2 * base.seconds, rel=0.05)  # compute bound: time ~ load
    assert skew.flops == base.flops  # FLOPs of the mean rank
    one = _op(_ctx("qwen3-30b-a3b"), agg, "moe_experts_gate_up", "ffn")
    assert (
        _op(_ctx("qwen3-30b-a3b", imbalance=2.0), agg, "moe_experts_gate_up", "ffn").seconds
        == one.seconds
    )


def test_step_cost_fp8_weights_halve_memory_bound_decode():
    agg = Aggregates(decode_seqs=1, decode_ctx=10, sampled=1)
    bf = _op(_ctx(), agg, "mlp_down")
    f8 = _op(_ctx(dtypes=DTypes("fp8", "fp8", "fp8")), agg, "mlp_down")
    assert f8.seconds == pytest.approx(bf.seconds / 2, rel=1e-3)


def test_step_cost_ep_alltoall_crosses_scaleout_beyond_scaleup_domain():
    agg = Aggregates(decode_seqs=256, decode_ctx=256 * 1000, sampled=256)
    hw = load_hardware("h100-sxm")
    intra = _op(_ctx("deepseek-v3", hw=hw, tp=8, ep=8), agg, "ep_dispatch")
    inter = _op(_ctx("deepseek-v3", hw=hw, tp=8, dp_attn=2, ep=16), agg, "ep_dispatch")
    # half the bytes per device, but over a NIC ~9x slower than NVLink
    assert inter.seconds > intra.seconds and inter.bound == "comm"


def test_step_cost_unknown_role_raises_spec_error():
    with pytest.raises(SpecError, match="role"):
        step_cost(_ctx(), "mystery", Aggregates())


def _reference_totals(ctx: CostContext, role: str, agg: Aggregates) -> tuple:
    """The step's totals summed from breakdown() one operator at a time (the slow path)."""
    stage = ctx.parallel.tp * ctx.parallel.dp_attn
    parts = {"compute": 0.0, "memory": 0.0, "comm": 0.0, "overhead": ctx.overhead_s}
    flops = hbm = 0.0
    for o in breakdown(ctx, role, agg):
        parts[o.bound] += o.count * o.seconds
        flops += o.count * o.flops * stage
        if o.bound != "comm":
            hbm += o.count * o.bytes * stage
    return sum(parts.values()), flops, hbm, parts["compute"], parts["memory"], parts["comm"]


@pytest.mark.parametrize("model, par", CASES)
def test_step_cost_fast_path_matches_breakdown_on_random_batches(model, par):
    import numpy as np

    rng = np.random.default_rng(20261122)
    ctx = _ctx(model, hw=load_hardware("h100-sxm"), overhead_s=0.002, imbalance=1.2, **par)
    for _ in range(60):
        chunks = [
            (int(rng.integers(1, 3000)), int(rng.integers(0, 9000)))
            for _ in range(rng.integers(0, 3))
        ]
        ctxs = rng.integers(1, 20000, size=int(rng.integers(0, 200)))
        agg = Aggregates(
            sum(c for c, _ in chunks), len(chunks), sum(c * p + c * (c + 1) // 2 for c, p in chunks),
            sum(p for _, p in chunks), len(ctxs), int(ctxs.sum()), len(chunks) + len(ctxs),
        )  # fmt: skip
        for role in ("colocated", "attention", "ffn"):
            got = step_cost(ctx, role, agg)
            want = _reference_totals(ctx, role, agg)
            fields = (got.seconds, got.flops, got.bytes, got.compute_s, got.memory_s, got.comm_s)
            assert fields == pytest.approx(want, rel=1e-12, abs=1e-300)


def test_decode_attention_kernel_equals_attention_time_bit_for_bit():
    import numpy as np

    rng = np.random.default_rng(7)
    for hw_name in ("a100-sxm", "h100-sxm", "mi300x"):
        hw = load_hardware(hw_name)
        for qh, kvh, hd in ((32, 8, 128), (16, 1, 576), (8, 1, 64)):
            kernel = roofline.decode_attention_kernel(hw, q_heads=qh, kv_heads=kvh, head_dim=hd)
            for _ in range(200):
                seqs = int(rng.integers(1, 300))
                pairs = float(seqs * rng.integers(1, 30000))
                fl, by = 4.0 * pairs * qh * hd, pairs * 2 * kvh * hd * 2 + seqs * 4 * qh * hd
                want = roofline.attention_time(
                    hw, fl, by, "decode", seqs=seqs, q_heads=qh, kv_heads=kvh, head_dim=hd,
                    pairs=pairs,
                )  # fmt: skip
                assert kernel(fl, by, seqs, pairs) == tuple(want)


def test_prefill_attention_kernel_equals_attention_time_bit_for_bit():
    import numpy as np

    rng = np.random.default_rng(8)
    for hw_name in ("a100-sxm", "h100-sxm", "b200"):
        hw = load_hardware(hw_name)
        kernel = roofline.prefill_attention_kernel(hw, dtype="bf16")
        for _ in range(200):
            seqs, tokens = int(rng.integers(1, 8)), float(rng.integers(1, 8192))
            pairs = tokens * float(rng.integers(1, 8000))
            causal = min(pairs, tokens * (tokens + 1) / 2.0)
            fl, by = 4.0 * pairs * 32 * 128, (pairs / tokens + tokens) * 4096.0
            want = roofline.attention_time(
                hw, fl, by, "prefill", seqs=seqs, q_heads=32, kv_heads=8, head_dim=128,
                tokens=tokens, pairs=pairs, causal_pairs=causal,
            )  # fmt: skip
            assert kernel(fl, by, seqs, tokens, pairs, causal) == tuple(want)


def test_mla_decode_kernel_sees_true_context_per_sequence():
    # MLA's FLOPs per (query, key) pair are 2 x (2 x kv_lora_rank + rope), not 4 x head_dim:
    # the split-KV model must get the real keys per sequence, not ones derived from the FLOPs
    hw = load_hardware("h100-sxm")
    ctx = _ctx("deepseek-v3", hw=hw, tp=8)
    agg = Aggregates(decode_seqs=4, decode_ctx=4 * 1000, sampled=4)
    op = _op(ctx, agg, "attn_decode")
    want = roofline.attention_time(
        hw, op.flops, op.bytes, "decode", seqs=4, q_heads=16, kv_heads=1, head_dim=576,
        pairs=4000.0,
    )  # fmt: skip
    assert op.seconds == want.seconds


def test_pp_sends_use_nic_only_between_scaleup_domains():
    # tp=4 x pp=4 on 8-GPU NVLink domains: stages 0,1 share one domain, 2,3 the next; only the
    # send from stage 1 to 2 crosses the NIC (before: all three were priced on the NIC)
    hw = load_hardware("h100-sxm")
    agg = Aggregates(prefill_tokens=4096, prefill_seqs=1, prefill_attn=4096 * 4097 // 2, sampled=1)
    op = _op(_ctx("llama-3.1-70b", hw=hw, tp=4, pp=4), agg, "pp_send")
    msg = 4096 * 2 * 8192 * 2
    # inside an engine step sends are graph-captured: no host launch cost
    nic = comm.p2p_time(hw, msg, scaleout=True, graph=True)
    nvlink = comm.p2p_time(hw, msg, graph=True)
    assert op.count == 3
    assert op.seconds * 3 == pytest.approx(nic + 2 * nvlink, rel=1e-12)
    # every send crosses when each stage fills a domain; none when the instance fits in one
    assert _op(_ctx("llama-3.1-70b", hw=hw, tp=8, pp=2), agg, "pp_send").seconds == nic
    assert _op(_ctx("llama-3.1-70b", hw=hw, tp=2, pp=4), agg, "pp_send").seconds == nvlink
