"""Prediction intervals of a run's headline metrics, from the calibration residuals of its ops.

A fitted profile stores, per op family, the 80% band of its kernels: ``[lo, hi]`` = the 10th and
90th percentile of measured / predicted time on rows held out of the fit (``intervals:``; see
servesim/cost/fitted.py). A step is a sum of ops; its band is the share-weighted sum of the op
bands (the errors of one family are systematic, one kernel library per shape class, so the bands
add as comonotone quantiles: the p10 of a sum of comonotone terms is the sum of their p10s).
Headline metrics scale with the step times they are made of (first order: TTFT with the prefill
step, TPOT/ITL with the decode step, E2E latency with both, throughput inversely with the mix),
giving ``interval.<metric>.lo/.hi`` in the summary.

Bands are on whenever the pool's hardware profile has an ``intervals`` section (the fitted and
derived NVIDIA profiles); otherwise no interval keys are written. Cost: two step breakdowns per
run (microseconds to milliseconds), independent of the number of requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from servesim.cost.ops import model_ops
from servesim.cost.step import Aggregates, CostContext, breakdown, pool_context
from servesim.specs.dtypes import DTypes

# Headline metrics and the step they follow.
PREFILL_METRICS = ("ttft_ms_mean", "ttft_ms_median", "ttft_ms_p99")
DECODE_METRICS = ("tpot_ms_mean", "tpot_ms_median", "tpot_ms_p99", "itl_ms_mean",
                  "itl_ms_median", "itl_ms_p99")  # fmt: skip
MIXED_METRICS = ("e2el_ms_mean", "e2el_ms_median", "e2el_ms_p99")
THROUGHPUT_METRICS = ("request_throughput", "output_throughput", "total_token_throughput")


def _fmt(dtype: str) -> str:
    return {"fp16": "bf16", "int8": "fp8", "int4": "fp4"}.get(dtype, dtype)


def family_of(kind: str, name: str, dtypes: DTypes, attn_dtype: str) -> str | None:
    """The calibration family whose band an op of ``kind`` takes (None: no band, e.g. overhead)."""
    if kind == "gemm":
        return f"gemm.{_fmt(dtypes.compute)}" if name not in ("lm_head", "embed") else "gemm.bf16"
    if kind == "experts":
        return f"moe.{_fmt(dtypes.compute)}"
    if kind == "attn_prefill":
        return f"attn_prefill.{_fmt(attn_dtype)}"
    if kind == "attn_decode":
        return f"attn_decode.{'fp8' if dtypes.kv_cache in ('fp8', 'int8') else 'bf16'}"
    if kind == "allreduce":
        return "allreduce.custom"
    if kind == "elementwise":
        return None  # norms, activations: small, no kernel table
    return None


def band_of(bands: Mapping[str, tuple[float, float]], family: str | None) -> tuple[float, float]:
    """An op family's band; a family without rows takes its op's bf16 band, else none (1, 1)."""
    if family is None:
        return 1.0, 1.0
    if family in bands:
        return bands[family]
    return bands.get(family.partition(".")[0] + ".bf16", (1.0, 1.0))


def step_band(ctx: CostContext, role: str, agg: Aggregates) -> tuple[float, float]:
    """(lo, hi) multipliers of one step's time: op bands weighted by the ops' shares of it."""
    bands = {f: (lo, hi) for f, lo, hi in ctx.hardware.intervals}
    eng = ctx.engine  # the operator list as step.py's plan builds it
    mo = model_ops(
        ctx.model, ctx.dtypes, ctx.parallel, rope_fused=bool(eng and eng.rope_fused),
        moe_comm=eng.moe_comm if eng else "alltoall", redundant_experts=ctx.redundant_experts,
    )  # fmt: skip
    ops = {op.name: op for op in mo.ops}
    total = lo = hi = 0.0
    for row in breakdown(ctx, role, agg):
        t = row.count * row.seconds
        op = ops.get(row.name)
        fam = (
            None
            if op is None
            else family_of(op.kind, op.name, op.dtypes or ctx.dtypes, op.attn_dtype)
        )
        b = band_of(bands, fam)
        total += t
        lo += t * b[0]
        hi += t * b[1]
    total += ctx.overhead_s
    lo += ctx.overhead_s
    hi += ctx.overhead_s
    if total <= 0:
        return 1.0, 1.0
    return lo / total, hi / total


def metric_intervals(
    summary: Mapping[str, Any], ctx: CostContext, role: str = "colocated"
) -> dict[str, float]:
    """``interval.<metric>.lo/.hi`` of the headline metrics of ``summary`` (see module doc).

    The representative steps: one prefill chunk of the mean prompt, and a decode step of the
    run's mean batch at the mean context (prompt + half the output)."""
    if not ctx.hardware.intervals:
        return {}
    done = summary.get("completed") or 0
    if not done:
        return {}
    prompt = max(1, round((summary.get("total_input_tokens") or 0) / done))
    output = max(1, round((summary.get("total_output_tokens") or 0) / done))
    batch = max(1, round(summary.get("batch_size_mean") or summary.get("decode_batch_mean") or 1))
    ctx_len = prompt + output // 2
    pre = Aggregates(prefill_tokens=prompt, prefill_seqs=1, prefill_attn=prompt * (prompt + 1) // 2,
                     sampled=1)  # fmt: skip
    dec = Aggregates(decode_seqs=batch, decode_ctx=batch * ctx_len, sampled=batch)
    p_lo, p_hi = step_band(ctx, role, pre)
    d_lo, d_hi = step_band(ctx, role, dec)
    # time the run spends in each kind of step, per request: one prefill, `output` decode steps
    # shared by the batch
    from servesim.cost.step import step_cost

    t_pre = step_cost(ctx, role, pre).seconds
    t_dec = step_cost(ctx, role, dec).seconds * output / batch
    w = t_pre / (t_pre + t_dec) if t_pre + t_dec > 0 else 0.5
    m_lo, m_hi = w * p_lo + (1 - w) * d_lo, w * p_hi + (1 - w) * d_hi
    out: dict[str, float] = {}

    def put(metric: str, lo: float, hi: float) -> None:
        value = summary.get(metric)
        if isinstance(value, (int, float)) and value == value:
            out[f"interval.{metric}.lo"] = float(value) * lo
            out[f"interval.{metric}.hi"] = float(value) * hi

    for m in PREFILL_METRICS:
        put(m, p_lo, p_hi)
    for m in DECODE_METRICS:
        put(m, d_lo, d_hi)
    for m in MIXED_METRICS:
        put(m, m_lo, m_hi)
    for m in THROUGHPUT_METRICS:
        put(m, 1.0 / m_hi, 1.0 / m_lo)
    return out


def _pool_context(cfg: Any, roles: tuple[str, ...]) -> tuple[CostContext, str] | None:
    for spec in cfg.deployment.pools:
        if spec.role in roles:
            # the step the pool's engine runs (sim/cluster.py builds the same context); skewed
            # MoE routing only shifts the shares a little: uniform here
            ctx = pool_context(cfg, spec)
            return ctx, spec.role
    return None


def run_intervals(summary: Mapping[str, Any], cfg: Any) -> dict[str, float]:
    """The interval keys of a run's summary (the hook result.py calls): TTFT from the pool that
    prefills, TPOT/ITL from the pool that decodes (the same pool when colocated)."""
    pre = _pool_context(cfg, ("colocated", "prefill"))
    dec = _pool_context(cfg, ("colocated", "decode"))
    if pre is None or dec is None:
        return {}
    out = metric_intervals(summary, *dec)
    if pre[0] is not dec[0]:
        first = metric_intervals(summary, *pre)
        out.update({k: v for k, v in first.items() if ".ttft_" in k})
    return out


def nested(summary: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """``{metric: {"lo": .., "hi": ..}}`` of a summary's interval keys (benchmark JSON's block)."""
    out: dict[str, dict[str, float]] = {}
    for key, value in summary.items():
        if key.startswith("interval."):
            metric, _, end = key[len("interval.") :].rpartition(".")
            out.setdefault(metric, {})[end] = value
    return out
