"""``servesim train --search``: the fastest or cheapest training layouts that fit in memory.

Enumerates TP (within the scale-up domain), PP (dividing the layers), virtual stages, CP (for long
sequences), EP (MoE), micro-batch, recomputation and ZeRO stage for each hardware and device count,
keeps the layouts that are valid and fit, ranks them by wall time or cost, and marks the Pareto
front of time vs cost. Each row says why: headroom, bottleneck, MFU.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import pandas as pd

from servesim.specs.common import SpecError
from servesim.specs.cost import CostSpec
from servesim.specs.hardware import load_hardware
from servesim.specs.model import ModelSpec, load_model
from servesim.training.estimate import estimate
from servesim.training.layout import make_layout

GiB = 2**30
# device counts scanned when only a target time is given: 8 to 32,768, doubling
SCAN_DEVICES = tuple(8 * 2**k for k in range(13))


def _divisors(n: int, cap: int) -> list[int]:
    return [d for d in range(1, min(n, cap) + 1) if n % d == 0]


def _candidates(m: ModelSpec, devices: int, scaleup: int, seq_len: int, global_batch: int,
                dtype: str, framework: str):  # fmt: skip
    tps = [t for t in (1, 2, 4, 8, 16) if t <= scaleup and m.num_heads % t == 0]
    pps = [p for p in (1, 2, 4, 8, 16, 32) if p <= m.num_layers]
    cps = [c for c in (1, 2, 4, 8, 16) if seq_len // c >= 8192 or c == 1]
    eps = [e for e in (1, 2, 4, 8, 16, 32, 64) if m.is_moe and m.num_experts % e == 0] or [1]
    for tp, pp, cp, ep in itertools.product(tps, pps, cps, eps):
        if devices % (tp * pp * cp):
            continue
        for vp, mb, rc, zero in itertools.product((1, 2), (1, 2), ("selective", "full"),
                                                  ("1", "3")):  # fmt: skip
            if vp > 1 and pp == 1:
                continue
            if zero == "3" and pp > 1:  # FSDP with pipelining: not a common recipe
                continue
            base = dict(devices=devices, tp=tp, pp=pp, cp=cp, ep=ep, vp=vp, seq_len=seq_len,
                        global_batch=global_batch, micro_batch=mb, recompute=rc, zero=zero,
                        dtype=dtype, framework=framework)  # fmt: skip
            yield base
            if ep > 1 and vp == 1 and pp >= 2 and pp % 2 == 0:  # MoE: DualPipe hides the all-to-all
                yield base | {"schedule": "dualpipe"}


def search_layouts(
    model: str | ModelSpec,
    hardware: Sequence[str],
    devices: Sequence[int] | None,
    *,
    seq_len: int,
    global_batch: int,
    dtype: str = "bf16",
    tokens: float | None = None,
    target_days: float | None = None,
    objective: str = "time",
    top: int = 10,
    framework: str = "megatron",
    cost: CostSpec | None = None,
) -> pd.DataFrame:
    """Layouts that fit, best first (``objective`` "time" or "cost"), one row each with the
    reason; ``pareto`` marks the layouts no other beats on both wall time and cost. ``devices``
    None with ``target_days``: the smallest device counts (doubling) that meet the target."""
    if objective not in ("time", "cost"):
        raise SpecError("train --search", "objective", objective, "must be time or cost")
    if target_days is not None and tokens is None:
        raise SpecError("train --search", "target_days", target_days, "needs --tokens")
    m = model if isinstance(model, ModelSpec) else load_model(model, where="train --model")
    work = tokens if tokens is not None else float(global_batch * seq_len * 1000)
    if devices is None and target_days is None:
        raise SpecError("train --search", "devices", None, "give device budgets or a target time")
    rows: list[dict[str, Any]] = []
    tried = 0
    for hw_name in hardware:
        hw = load_hardware(hw_name, where="train --hw")
        met = 0  # without budgets: scan doubling sizes until two of them meet the target time
        for n in devices if devices is not None else SCAN_DEVICES:
            found = []
            for kw in _candidates(m, n, hw.scaleup_devices, seq_len, global_batch, dtype,
                                  framework):  # fmt: skip
                try:
                    layout = make_layout(m, **kw)
                except SpecError:
                    continue
                tried += 1
                est = estimate(m, hw, layout, tokens=work, cost=cost)
                if est.fits:
                    found.append(_row(est, hw.name, tokens is not None))
            rows += found
            if devices is None and any(r["days"] <= target_days for r in found):
                met += 1
                if met == 2:
                    break
    if not rows:
        raise SpecError("train --search", "layouts", tried,
                        "no layout fits in memory; add devices or a larger device")  # fmt: skip
    frame = pd.DataFrame(rows)
    if target_days is not None:
        frame = frame[frame["days"] <= target_days]
        if frame.empty:
            raise SpecError("train --search", "target_days", target_days,
                            "no fitting layout trains the tokens that fast")  # fmt: skip
    frame = _pareto(frame)
    key = ["days", "cost_usd"] if objective == "time" else ["cost_usd", "days"]
    frame = frame.sort_values(key, na_position="last", kind="mergesort")
    frame = frame.drop_duplicates(subset=["hardware", "devices", "layout"]).head(top)
    return frame.reset_index(drop=True).assign(rank=lambda f: f.index + 1)


def _row(est, hw_name: str, real_tokens: bool) -> dict[str, Any]:
    lo = est.layout
    text = (f"tp{lo.tp} pp{lo.pp}" + (f"x{lo.vp}" if lo.vp > 1 else "")
            + (" dualpipe" if lo.schedule == "dualpipe" else "") + f" dp{lo.dp}"
            + (f" cp{lo.cp}" if lo.cp > 1 else "") + (f" ep{lo.ep}" if lo.ep > 1 else "")
            + f" mb{lo.micro_batch} {lo.recompute} zero{lo.zero}")  # fmt: skip
    reason = (f"fits with {est.headroom_bytes / GiB:.1f} GiB spare; MFU {est.mfu:.0%}; "
              f"bottleneck {est.bottleneck}")  # fmt: skip
    return {
        "hardware": hw_name, "devices": lo.devices, "layout": text, "step_s": est.step_s,
        "tokens_per_s_per_device": est.tokens_per_s_per_device, "mfu": est.mfu,
        "memory_GiB": est.memory_per_device_bytes / GiB,
        "days": est.time_to_train_s / 86400.0 if real_tokens else None,
        "gpu_hours": est.gpu_hours if real_tokens else None,
        "cost_usd": est.cost_usd if real_tokens else None,
        "usd_per_mtok": (est.cost_usd / est.tokens * 1e6) if est.cost_usd else None,
        "reason": reason,
    }  # fmt: skip


def _pareto(frame: pd.DataFrame) -> pd.DataFrame:
    """A layout is on the front if no other is at least as fast and as cheap, and better in one
    (per-token time and cost when no token count is given)."""
    t = frame["days"].fillna(1.0 / frame["tokens_per_s_per_device"] / frame["devices"])
    c = frame["usd_per_mtok"].fillna(float("inf"))
    tv, cv = t.to_numpy(), c.to_numpy()
    front = [not any((tv[j] <= tv[i] and cv[j] <= cv[i] and (tv[j] < tv[i] or cv[j] < cv[i]))
                     for j in range(len(tv))) for i in range(len(tv))]  # fmt: skip
    return frame.assign(pareto=front)
