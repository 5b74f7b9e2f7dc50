"""TP x PP x EP layouts worth trying for a model on a device.

Given TP degrees (default 1, 2, 4, 8) get PP = 1. Where the model does not fit a device group of
that size (a 70B model on SRAM machines, a 405B model on 8 GPUs), PP grows to the smallest
number of stages that fits (powers of two, then the layer count); where even one layer per
stage does not fit 8-way TP, TP grows in powers of two up to the scale-up domain. MoE models
also try EP = TP (experts spread over the tensor-parallel group) beside EP = 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from servesim.specs.common import SpecError

TP_CHOICES = (1, 2, 4, 8)
MAX_DEVICES_PER_REPLICA = 4096  # beyond this a single replica is not a plan anyone would buy


def _fits(model: Any, hw: Any, tp: int, pp: int, ep: int, dtypes: Any) -> bool:
    from servesim.cost import memory
    from servesim.cost.step import CostContext
    from servesim.specs.config import Parallelism

    try:
        ctx = CostContext(model, hw, Parallelism(tp=tp, pp=pp, ep=ep), dtypes, float(hw.overhead_s))
        memory.check_fit(ctx, 0.9, "colocated", "plan")
    except SpecError:
        return False
    return True


def _stage_choices(layers: int) -> list[int]:
    out, p = [], 2
    while p < layers:
        out.append(p)
        p *= 2
    return out + [layers]


def layouts(model: Any, hw: Any, a: Mapping[str, Any], moe: bool) -> list[tuple[int, int, int]]:
    """(tp, pp, ep) to try on ``hw``; the caller checks the fit again and notes the misfits."""
    from servesim.specs.dtypes import parse_dtypes

    dtypes = parse_dtypes(a["dtype"], "plan")
    scaleup = int(hw.scaleup_devices or 1)
    tps = [t for t in (a.get("tp") or TP_CHOICES) if t <= scaleup]
    if a.get("pp"):
        return [(tp, pp, ep) for tp in tps for pp in a["pp"] for ep in _eps(tp, moe)]
    out = []
    for tp in tps:
        for ep in _eps(tp, moe):
            out.append((tp, _min_pp(model, hw, tp, ep, dtypes), ep))
    if not a.get("tp") and not any(_fits(model, hw, *lay[:2], lay[2], dtypes) for lay in out):
        tp = max(tps, default=1) * 2
        while tp <= scaleup and tp * 2 <= MAX_DEVICES_PER_REPLICA:
            pp = _min_pp(model, hw, tp, 1, dtypes)
            if _fits(model, hw, tp, pp, 1, dtypes):
                out.append((tp, pp, 1))
                break
            tp *= 2
    return list(dict.fromkeys(out))


def _eps(tp: int, moe: bool) -> list[int]:
    return sorted({1, tp}) if moe else [1]


def _min_pp(model: Any, hw: Any, tp: int, ep: int, dtypes: Any) -> int:
    """The fewest pipeline stages that fit (1 when it fits or when nothing does)."""
    if _fits(model, hw, tp, 1, ep, dtypes):
        return 1
    for pp in _stage_choices(int(model.num_layers)):
        if tp * pp > MAX_DEVICES_PER_REPLICA:
            break
        if _fits(model, hw, tp, pp, ep, dtypes):
            return pp
    return 1
