"""One time function per operator kind: ``TIME_OF[op.kind](plan, op, m) -> Row``.

A row is (flops, HBM bytes, seconds, bound, link bytes) of one run of the operator on one device of
one instance, for ``m`` > 0 rows of its row source (ops.py's ``m_src``); step.py sums the rows with
the operators' counts. ``plan`` is step.py's per-(context, role) plan: ``plan.ctx`` (model,
hardware, formats, engine, MoE imbalance), ``plan.mo`` (the operator list and its parallelism),
``plan.scaleout`` (pipeline sends crossing scale-up domains), ``plan.moe_scale`` (the engine's
MoE kernel factor).

The attention kinds (``attn_prefill``, ``attn_decode``) depend on several batch aggregates at once
and are evaluated every step in step.py; every other kind depends on one row count, so its rows
are cached per count. A new kind is one function here (see docs/internals.md, "Adding an operator").
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from servesim.cost import comm, roofline
from servesim.cost.ops import Op, expected_distinct_experts, gemm_flops_bytes, local_rows
from servesim.specs.dtypes import DTYPE_BYTES, DTypes
from servesim.specs.hardware import HardwareSpec

# One evaluated operator: (flops, bytes, seconds, bound, link bytes), per device per instance.
Row = tuple[float, float, float, str, float]
ZERO: Row = (0.0, 0.0, 0.0, "overhead", 0.0)
# DeepEP low-latency kernels serve up to 128 tokens per rank (num_max_dispatch_tokens_per_rank,
# SGLang's default for decode); larger batches use the normal (node-deduplicating) kernels.
_LL_TOKENS = 128


def _rows(plan: Any, op: Op, m: int) -> int:
    """Rows one device computes: its dp_attn group's share, or all of them (MoE experts)."""
    return local_rows(m, plan.mo.dp_attn) if op.local else m


def gemms(hw: HardwareSpec, m: int, dims, dt: DTypes, time_of) -> Row:
    """One or more GEMMs run back to back as one operator (e.g. a shared expert's up and down)."""
    fl = by = s = 0.0
    bound, best = "overhead", -1.0
    for n, k in dims:
        t = time_of(n, k)
        f1, b1 = gemm_flops_bytes(m, n, k, dt)
        fl += f1
        by += b1
        s += t.seconds
        if t.seconds > best:
            bound, best = t.bound, t.seconds
    return (fl, by, s, bound, 0.0)


def gemm(plan: Any, op: Op, m: int) -> Row:
    hw, rows = plan.ctx.hardware, _rows(plan, op, m)
    dt = op.dtypes or plan.ctx.dtypes
    return gemms(hw, rows, op.dims, dt, lambda n, k: roofline.gemm_time(hw, rows, n, k, dt))


def elementwise(plan: Any, op: Op, m: int) -> Row:
    msg = _rows(plan, op, m) * op.bytes_per_row
    t = roofline.elementwise_time(plan.ctx.hardware, msg)
    return (0.0, msg, t.seconds, t.bound, 0.0)


def allreduce(plan: Any, op: Op, m: int) -> Row:
    msg, g = _rows(plan, op, m) * op.bytes_per_row, op.group
    t = comm.tp_allreduce_time(plan.ctx.hardware, msg, g, plan.ctx.engine)
    return (0.0, msg, t, "comm", 2.0 * (g - 1) / g * msg)


def allgather(plan: Any, op: Op, m: int) -> Row:
    # msg: the gathered total (all dp groups' tokens); each device sends its 1/g share
    msg, g = _rows(plan, op, m) * op.bytes_per_row, op.group
    t = comm.allgather_time(plan.ctx.hardware, msg, g, graph=True)
    return (0.0, msg, t, "comm", (g - 1) / g * msg)


def alltoall(plan: Any, op: Op, m: int) -> Row:
    # msg: this device's tokens' hidden states (one copy each); topk set the fan-out
    rows = _rows(plan, op, m)
    msg, g = rows * op.bytes_per_row, op.group
    t, link = comm.ep_alltoall(
        plan.ctx.hardware, msg, g, op.topk, low_latency=rows <= _LL_TOKENS * g
    )
    return (0.0, msg, t, "comm", link)


def p2p(plan: Any, op: Op, m: int) -> Row:
    # the mean send: those between stages in different scale-up domains use the NIC
    hw, msg = plan.ctx.hardware, _rows(plan, op, m) * op.bytes_per_row
    n, out = op.count, plan.scaleout
    t = comm.p2p_time(hw, msg, scaleout=out > 0, graph=True)
    if 0 < out < n:
        t = (out * t + (n - out) * comm.p2p_time(hw, msg, graph=True)) / n
    return (0.0, msg, t, "comm", msg)


def experts(plan: Any, op: Op, tokens: int) -> Row:
    """Routed experts on the slowest EP rank: its share of the distinct experts touched, and the
    mean routed rows x the imbalance factor (FLOPs and bytes are those of the mean rank)."""
    ctx = plan.ctx
    hw, dt = ctx.hardware, ctx.dtypes
    touched = expected_distinct_experts(op.num_experts, op.topk, tokens) / op.ep
    mean = tokens * op.topk / op.ep
    slow = math.ceil(mean * (ctx.moe_imbalance if op.ep > 1 else 1.0))
    if not op.dims:  # permute, activation, un-permute: inside the engine's fused MoE too
        t = roofline.elementwise_time(hw, slow * op.bytes_per_row)
        s = t.seconds * plan.moe_scale
        if op.all_tokens:  # other ranks' rows in its buffers (moe_token_passes)
            row = op.bytes_per_row / (1.0 + 1.0 / op.topk)
            s += roofline.moe_other_rows_time(hw, tokens * op.topk - slow, row, dt.compute)
        return (0.0, mean * op.bytes_per_row, s, t.bound, 0.0)
    wb, ab = DTYPE_BYTES[dt.weights], DTYPE_BYTES[dt.activations]
    fl = by = s = 0.0
    bound, best = "overhead", -1.0
    for n, k in op.dims:
        t = roofline.grouped_gemm_time(hw, slow, touched, n, k, dt)
        fl += 2.0 * mean * n * k
        by += touched * k * n * wb + mean * (k + n) * ab
        s += t.seconds * plan.moe_scale
        if t.seconds > best:
            bound, best = t.bound, t.seconds
    return (fl, by, s, bound, 0.0)


TIME_OF: dict[str, Callable[[Any, Op, int], Row]] = {
    "gemm": gemm,
    "experts": experts,
    "elementwise": elementwise,
    "allreduce": allreduce,
    "allgather": allgather,
    "reducescatter": allgather,  # the same ring volume as an all-gather
    "alltoall": alltoall,
    "p2p": p2p,
}
