"""TP x PP x EP layouts worth trying for a model on a device.

Given TP degrees (default 1, 2, 4, 8) get PP = 1. Where the model does not fit a device group of
that size (a 70B model on SRAM machines, a 405B model on 8 GPUs), PP grows to the smallest
number of stages that fits (powers of two, then the layer count); where even one layer per
stage does not fit 8-way TP, TP grows in powers of two up to the scale-up domain, first with the
8192-token batch budget, then with 1024 (the activation reserve of a large chunk does not fit a
few hundred MB of SRAM). MoE models also try EP = TP beside EP = 1.
Each layout is (tp, pp, ep, max_num_batched_tokens).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from servesim.specs.common import SpecError

TP_CHOICES = (1, 2, 4, 8)
MAX_DEVICES_PER_REPLICA = 4096  # beyond this a single replica is not a plan anyone would buy


def _fits(model: Any, hw: Any, tp: int, pp: int, ep: int, dtypes: Any, mbt: int = 8192) -> bool:
    from servesim.cost import memory
    from servesim.cost.step import CostContext
    from servesim.specs.config import Parallelism

    try:
        ctx = CostContext(model, hw, Parallelism(tp=tp, pp=pp, ep=ep), dtypes, float(hw.overhead_s))
        memory.check_fit(ctx, 0.9, "colocated", "plan", max_num_batched_tokens=mbt)
    except SpecError:
        return False
    return True


def _stage_choices(layers: int) -> list[int]:
    out, p = [], 2
    while p < layers:
        out.append(p)
        p *= 2
    return out + [layers]


def layouts(
    model: Any, hw: Any, a: Mapping[str, Any], moe: bool
) -> list[tuple[int, int, int, int]]:
    """(tp, pp, ep, max_num_batched_tokens) to try on ``hw``; the caller checks the fit again."""
    from servesim.specs.dtypes import parse_dtypes

    dtypes = parse_dtypes(a["dtype"], "plan")
    scaleup = int(hw.scaleup_devices or 1)
    tps = [t for t in (a.get("tp") or TP_CHOICES) if t <= scaleup]
    if a.get("pp"):
        return [(tp, pp, ep, 8192) for tp in tps for pp in a["pp"] for ep in _eps(tp, moe)]
    out = []
    for tp in tps:
        for ep in _eps(tp, moe):
            out.append((tp, _min_pp(model, hw, tp, ep, dtypes, 8192), ep, 8192))
    if a.get("tp") or any(_fits(model, hw, *lay[:3], dtypes, lay[3]) for lay in out):
        return list(dict.fromkeys(out))
    for mbt in (8192, 1024):
        tp = max(tps, default=1)
        while tp <= scaleup and tp <= MAX_DEVICES_PER_REPLICA:
            pp = _min_pp(model, hw, tp, 1, dtypes, mbt)
            if _fits(model, hw, tp, pp, 1, dtypes, mbt):
                return list(dict.fromkeys(out + [(tp, pp, 1, mbt)]))
            tp *= 2
    return list(dict.fromkeys(out))


def unpriced_note(
    model: Any, hw: Any, lays: list[tuple[int, int, int, int]], a: Mapping[str, Any]
) -> str:
    """Why an unpriced device is not ranked, and whether the model would fit on it at all."""
    from servesim.specs.dtypes import parse_dtypes

    dtypes = parse_dtypes(a["dtype"], "plan")
    fit = [lay for lay in lays if _fits(model, hw, *lay[:3], dtypes, lay[3])]
    if fit:
        tp, pp, ep, mbt = min(fit, key=lambda x: x[0] * x[1])
        where = (f"{model.name} fits as TP{tp} x PP{pp} = {tp * pp} devices per replica "
                 f"(max_num_batched_tokens {mbt})")  # fmt: skip
    else:
        top_tp = min(int(hw.scaleup_devices or 1), MAX_DEVICES_PER_REPLICA)
        where = (f"{model.name} does not fit even at TP{top_tp} x PP{model.num_layers} "
                 f"({hw.memory_GB:g} GB per device)")  # fmt: skip
    return (
        f"{hw.name}: {where}; no price (no hourly price in any catalog, no purchase price in "
        f"hw_profiles/{hw.name}.yaml), so it is not simulated or ranked; per-token APIs serving "
        "the model on it are in the options"
    )


def _eps(tp: int, moe: bool) -> list[int]:
    return sorted({1, tp}) if moe else [1]


def _min_pp(model: Any, hw: Any, tp: int, ep: int, dtypes: Any, mbt: int = 8192) -> int:
    """The fewest pipeline stages that fit (1 when it fits or when nothing does)."""
    if _fits(model, hw, tp, 1, ep, dtypes, mbt):
        return 1
    for pp in _stage_choices(int(model.num_layers)):
        if tp * pp > MAX_DEVICES_PER_REPLICA:
            break
        if _fits(model, hw, tp, pp, ep, dtypes, mbt):
            return pp
    return 1
