"""Static analysis of one model on one device: the per-operator roofline of a step, and what fits.

``roofline`` and ``model_info`` are public (``servesim.roofline``, ``servesim.model_info``); both
take catalog names, file paths or specs, and call the cost model exactly as the engine does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from servesim.cost import memory
from servesim.cost.step import Aggregates, CostContext, breakdown, step_cost
from servesim.specs.common import SpecError
from servesim.specs.config import DEFAULT_MAX_NUM_BATCHED_TOKENS, ROLES, Parallelism
from servesim.specs.dtypes import DTypes, parse_dtypes
from servesim.specs.hardware import HardwareSpec
from servesim.specs.model import ModelSpec

__all__ = ["batch_aggregates", "model_info", "operators", "roofline", "roofline_summary"]

_WHERE = "roofline"
# The step `roofline` shows when no batch is given: one sequence decoding at a 1024-token context.
DEFAULT_DECODE = ((1, 1024),)
COLUMNS = ["name", "count", "flops", "bytes", "seconds", "total_s", "bound", "share"]


def _model(model: ModelSpec | str) -> ModelSpec:
    if isinstance(model, ModelSpec):
        return model
    from servesim.specs.model import load_model

    return load_model(model)


def _hardware(hardware: HardwareSpec | str) -> HardwareSpec:
    if isinstance(hardware, HardwareSpec):
        return hardware
    from servesim.specs.hardware import load_hardware

    return load_hardware(hardware)


def _dtypes(dtype: DTypes | str | Mapping | None, where: str) -> DTypes:
    if dtype is None:
        return DTypes()
    if isinstance(dtype, DTypes):
        return dtype
    return parse_dtypes(dtype, where)


def _pair(item: Any, field: str, first_min: int, second_min: int) -> tuple[int, int]:
    try:
        a, b = item
    except (TypeError, ValueError):
        raise SpecError(_WHERE, field, item, "must be a pair of whole numbers") from None
    for v, lo in ((a, first_min), (b, second_min)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise SpecError(
                _WHERE,
                field,
                item,
                f"must be whole numbers, the first >= {first_min}, the second >= {second_min}",
            )
    return a, b


def batch_aggregates(
    prefill: Sequence[tuple[int, int]] = (), decode: Sequence[tuple[int, int]] = ()
) -> Aggregates:
    """Aggregates of prefill chunks (chunk, cached) and decode groups (batch, context); every
    sequence in the step samples a token (each chunk is taken to end its prompt)."""
    pt = ps = pa = pc = ds = dc = 0
    for i, item in enumerate(prefill):
        c, p = _pair(item, f"prefill[{i}]", 1, 0)
        pt, ps, pa, pc = pt + c, ps + 1, pa + c * p + c * (c + 1) // 2, pc + p
    for i, item in enumerate(decode):
        b, ctx = _pair(item, f"decode[{i}]", 1, 1)
        ds, dc = ds + b, dc + b * ctx
    return Aggregates(pt, ps, pa, pc, ds, dc, ps + ds)


def _context(model, hardware, tp, pp, ep, dp_attn, dtype, overhead_s) -> CostContext:
    m, hw = _model(model), _hardware(hardware)
    par = Parallelism(tp=tp, pp=pp, ep=ep, dp_attn=dp_attn)
    memory.validate_parallelism(m, par, _WHERE)
    ovh = hw.overhead_s if overhead_s is None else overhead_s
    if not isinstance(ovh, (int, float)) or not 0 <= ovh < float("inf"):  # nan fails too
        raise SpecError(_WHERE, "overhead_s", ovh, "must be a number >= 0")
    return CostContext(m, hw, par, _dtypes(dtype, _WHERE), float(ovh))


def roofline(
    model: ModelSpec | str,
    hardware: HardwareSpec | str,
    *,
    tp: int = 1,
    pp: int = 1,
    ep: int = 1,
    dp_attn: int = 1,
    dtype: DTypes | str | Mapping | None = None,
    prefill: Sequence[tuple[int, int]] | None = None,
    decode: Sequence[tuple[int, int]] | None = None,
    overhead_s: float | None = None,
    role: str = "colocated",
) -> pd.DataFrame:
    """One step's operators: name, count, flops, bytes, seconds (one instance, one device),
    total_s (count x seconds), bound, share of the step. Step totals, MFU, MBU and the bottleneck
    are in ``df.attrs`` (see ``roofline_summary``). No batch given: one sequence decoding at 1024."""
    ctx = _context(model, hardware, tp, pp, ep, dp_attn, dtype, overhead_s)
    if not prefill and not decode:
        decode = DEFAULT_DECODE
    agg = batch_aggregates(prefill or (), decode or ())
    total = step_cost(ctx, role, agg)
    rows = [op._asdict() for op in breakdown(ctx, role, agg) if op.seconds or op.flops or op.bytes]
    if ctx.overhead_s:
        rows.append(
            dict(
                name="overhead",
                count=1,
                flops=0.0,
                bytes=0.0,
                seconds=ctx.overhead_s,
                bound="overhead",
            )
        )
    df = pd.DataFrame(rows, columns=COLUMNS[:5] + ["bound"])
    df["total_s"] = df["count"] * df["seconds"]
    df["share"] = df["total_s"] / total.seconds if total.seconds > 0 else 0.0
    df = df[COLUMNS]
    df.attrs.update(_summary(ctx, role, agg, total, df))
    return df


def _summary(
    ctx: CostContext, role: str, agg: Aggregates, total, df: pd.DataFrame
) -> dict[str, Any]:
    hw, n = ctx.hardware, total.devices
    peak = hw.peak_flops(ctx.dtypes.compute)
    ops = df[df["name"] != "overhead"]
    bottleneck = str(ops.loc[ops["total_s"].idxmax(), "name"]) if len(ops) else ""
    s = total.seconds
    return {
        "model": ctx.model.name,
        "hardware": hw.name,
        "tp": ctx.parallel.tp,
        "pp": ctx.parallel.pp,
        "ep": ctx.parallel.ep,
        "dp_attn": ctx.parallel.dp_attn,
        "dtype": f"{ctx.dtypes.weights}/{ctx.dtypes.activations}/{ctx.dtypes.kv_cache}",
        "role": role,
        "aggregates": agg._asdict(),
        "devices": n,
        "step_s": s,
        "compute_s": total.compute_s,
        "memory_s": total.memory_s,
        "comm_s": total.comm_s,
        "overhead_s": total.overhead_s,
        "flops": total.flops,
        "bytes": total.bytes,
        "comm_bytes": total.comm_bytes,
        "mfu": total.flops / (s * n * peak) if s > 0 else 0.0,
        "mbu": total.bytes / (s * n * hw.memory_bw) if s > 0 else 0.0,
        "bottleneck": bottleneck,
        "tokens_per_s": (agg.prefill_tokens + agg.decode_seqs) / s if s > 0 else 0.0,
    }


def roofline_summary(df: pd.DataFrame) -> dict[str, Any]:
    """The step totals of a ``roofline`` table: step_s, mfu, mbu, bottleneck, flops, bytes, ..."""
    return dict(df.attrs)


OP_COLUMNS = [
    "name",
    "kind",
    "part",
    "scope",
    "count",
    "rows",
    "params",
    "weight_bytes",
    "act_bytes",
]


def operators(
    model: ModelSpec | str,
    *,
    tp: int = 1,
    pp: int = 1,
    ep: int = 1,
    dp_attn: int = 1,
    dtype: DTypes | str | Mapping | None = None,
    role: str = "colocated",
) -> pd.DataFrame:
    """The operator list the cost model derives everything from (cost/ops.py), one row per
    operator of the role on one device: kind, part (attention, ffn; link: shipped between an
    attention and an FFN pool), scope (layers it runs in), count per step, rows (the batch
    aggregate that sets its size), params (weight elements per layer, this device's shard),
    weight_bytes (its weights on the most loaded device: its layers on the largest stage),
    act_bytes (bytes per row live at the activation peak). ``df.attrs`` holds the totals:
    weight_bytes_per_device and activation_reserve_bytes."""
    from servesim.cost.ops import LINK, model_ops, role_parts

    m = _model(model)
    par = Parallelism(tp=tp, pp=pp, ep=ep, dp_attn=dp_attn)
    memory.validate_parallelism(m, par, "operators")
    dt = _dtypes(dtype, "operators")
    if role not in ROLES:
        raise SpecError("operators", "role", role, "must be one of " + ", ".join(ROLES))
    held = dict(memory.op_weight_bytes(m, dt, par, role))
    # an attention/FFN pool also sees what the split ships between the two
    parts = role_parts(role) + ((LINK,) if role in ("attention", "ffn") else ())
    rows = [
        dict(name=op.name, kind=op.kind, part=op.part, scope=op.scope, count=op.count,
             rows=op.m_src, params=op.params, weight_bytes=held.get(op, 0.0),
             act_bytes=op.act_bytes)
        for op in model_ops(m, dt, par).ops
        if op.part in parts
    ]  # fmt: skip
    df = pd.DataFrame(rows, columns=OP_COLUMNS)
    df.attrs.update(
        model=m.name, tp=tp, pp=pp, ep=ep, dp_attn=dp_attn, role=role,
        dtype=f"{dt.weights}/{dt.activations}/{dt.kv_cache}",
        weight_bytes_per_device=memory.weight_bytes_per_device(m, dt, par, role),
        activation_reserve_bytes=memory.activation_reserve_bytes(m, dt, par),
    )  # fmt: skip
    return df


def model_info(
    model: ModelSpec | str,
    hardware: HardwareSpec | str | None = None,
    *,
    tp: int = 1,
    pp: int = 1,
    ep: int = 1,
    dp_attn: int = 1,
    dtype: DTypes | str | Mapping | None = None,
    gpu_memory_utilization: float = 0.9,
    max_num_batched_tokens: int = DEFAULT_MAX_NUM_BATCHED_TOKENS,
) -> dict[str, Any]:
    """Parameters, weight bytes, KV bytes per token; with hardware: per-device memory, fit, KV capacity."""
    m = _model(model)
    dt = _dtypes(dtype, "model_info")
    total, active = getattr(m, "params_total", None), getattr(m, "params_active", None)
    if total is None or active is None:
        total, active = memory.param_counts(m)
    kv = {d: memory.kv_bytes_per_token(m, d) for d in ("bf16", "fp8")}
    kv[dt.kv_cache] = memory.kv_bytes_per_token(m, dt.kv_cache)
    info: dict[str, Any] = {
        "name": m.name,
        "params_total": total,
        "params_active": active,
        "weight_bytes": memory.weight_bytes(m, dt),
        "kv_bytes_per_token": kv,
        "dtype": f"{dt.weights}/{dt.activations}/{dt.kv_cache}",
    }
    if hardware is None:
        return info
    if not 0 < gpu_memory_utilization <= 1:
        raise SpecError(
            "model_info", "gpu_memory_utilization", gpu_memory_utilization, "must be in (0, 1]"
        )
    hw = _hardware(hardware)
    par = Parallelism(tp=tp, pp=pp, ep=ep, dp_attn=dp_attn)
    memory.validate_parallelism(m, par, "model_info")
    ctx = CostContext(m, hw, par, dt, hw.overhead_s)
    try:
        memory.check_fit(ctx, gpu_memory_utilization, "colocated", m.name, max_num_batched_tokens)
        fits, reason = True, ""
    except SpecError as exc:
        fits, reason = False, exc.allowed
    info.update(
        hardware=hw.name,
        tp=tp,
        pp=pp,
        ep=ep,
        dp_attn=dp_attn,
        devices=par.tp * par.pp * par.dp_attn,
        weight_bytes_per_device=memory.weight_bytes_per_device(m, dt, par),
        activation_reserve_bytes=memory.activation_reserve_bytes(
            m, dt, par, max_num_batched_tokens
        ),
        kv_bytes_per_token_per_device=memory.kv_bytes_per_token_per_device(m, dt, par),
        memory_per_device_bytes=hw.memory_bytes,
        gpu_memory_utilization=gpu_memory_utilization,
        fits=fits,
        reason=reason,
        kv_capacity_tokens=memory.kv_capacity_tokens(
            ctx, gpu_memory_utilization, "colocated", max_num_batched_tokens
        ),
    )
    return info
