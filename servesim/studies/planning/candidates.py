"""The planner's candidates: hardware x parallelism x batching cap x mode families with their
analytic bounds (a TTFT and a TPOT floor, a capacity estimate), the replica counts worth
simulating, and the run config of one candidate (servesim.plan's steps 1-2, docs/planning.md).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from servesim.specs.common import SpecError
from servesim.specs.config import DEFAULT_MAX_NUM_BATCHED_TOKENS as BUDGET
from servesim.specs.engines import kernels_for
from servesim.specs.limits import MAX_INSTANCES
from servesim.studies.planning import hetero
from servesim.studies.planning.layouts import layouts, unpriced_note
from servesim.studies.planning.options import search_pricing


@dataclass
class Family:
    """Hardware x parallelism x batching cap x mode, with its analytic bounds."""

    mode: str
    hardware: str
    tp: int
    ep: int
    pp: int
    cap: int
    price_hour: float  # per device, for ordering only
    ttft_floor_ms: float
    tpot_floor_ms: float
    capacity_rps: float  # one replica (colocated) or per prefill/decode instance pair basis
    prefill_rps: float = 0.0  # PD: one prefill instance
    decode_rps: float = 0.0  # PD: one decode instance
    mbt: int = BUDGET  # max_num_batched_tokens (smaller where only a small budget fits: SRAM)
    dec: Any = None  # heterogeneous PD: the decode side's Family (planning.hetero)
    speculative: Any = None  # a pool `speculative` mapping tried on the decoding pool, or None


# --------------------------------------------------------------------------- analytic bounds


def _families(a: Mapping[str, Any], traffic: Mapping[str, Any], notes: list[str]) -> list[Family]:
    from servesim.cost import memory
    from servesim.cost.step import CostContext
    from servesim.specs.config import Parallelism
    from servesim.specs.dtypes import parse_dtypes
    from servesim.specs.hardware import load_hardware
    from servesim.specs.model import load_model

    model = load_model(a["model"])
    dtypes = parse_dtypes(a["dtype"], "plan")
    isl, osl = max(int(traffic["isl"]), 1), max(int(traffic["osl"]), 1)
    moe = bool(getattr(model, "num_experts", 0))
    fams: list[Family] = []
    for hw_name in a["hardware"]:
        hw = load_hardware(hw_name).for_engine(a.get("engine"))  # its fitted kernels, fusions
        # a profile given as a file (a user accelerator) keeps its path: configs load it by path
        hw_id = str(hw_name) if str(hw_name).endswith((".yaml", ".yml")) else hw.name
        price = _device_hour_usd(hw, a["pricing"])
        lays = layouts(model, hw, a, moe)
        if price is None:
            notes.append(unpriced_note(model, hw, lays, a))
            continue
        kern = kernels_for(a.get("engine"), hw, dtypes)  # the same for every layout
        for tp, pp, ep, mbt in lays:
            ctx = CostContext(
                model, hw, Parallelism(tp=tp, pp=pp, ep=ep), dtypes, float(hw.overhead_s), 1.0, kern
            )
            try:
                memory.check_fit(ctx, 0.9, "colocated", "plan", max_num_batched_tokens=mbt)
            except SpecError as exc:
                notes.append(f"{hw.name} tp{tp} pp{pp} ep{ep}: {str(exc).split(': ', 2)[-1]}")
                continue
            kv = memory.kv_capacity_tokens(ctx, 0.9, "colocated", mbt)
            for cap in a["caps"]:
                b = _bounds(ctx, isl, osl, min(cap, kv // (isl + osl)), mbt)
                if b is None:
                    notes.append(f"{hw.name} tp{tp} pp{pp}: KV holds no {isl + osl}-token request")
                    continue
                for mode in a["modes"]:
                    if mode != "af" or moe:
                        fam = Family(mode, hw_id, tp, ep, pp, cap, price, *b, mbt=mbt)
                        fams += _spec_families(fam, a["speculative"])
    return fams + hetero.hetero_families(fams)


def _bounds(
    ctx: Any, isl: int, osl: int, batch: int, mbt: int = BUDGET
) -> tuple[float, ...] | None:
    """(TTFT floor ms, TPOT floor ms, replica capacity, prefill-instance rps, decode-instance rps).

    Floors: one prefill alone, a decode step of batch 1. Capacity: prefills batched under the
    token budget ``mbt`` stall the running batch; decode yields `batch` tokens per step of the
    largest batch the KV cache and the cap allow.
    """
    from servesim.cost.step import Aggregates, step_cost

    if batch < 1:
        return None

    def prefill(k: int) -> float:
        agg = Aggregates(
            prefill_tokens=k * isl,
            prefill_seqs=k,
            prefill_attn=k * (isl * (isl + 1) // 2),
            sampled=k,
        )
        return step_cost(ctx, "colocated", agg).seconds

    k = max(1, min(mbt // isl, batch))
    pre_one, pre_per_req = prefill(1), prefill(k) / k
    one = step_cost(
        ctx, "colocated", Aggregates(decode_seqs=1, decode_ctx=isl + osl, sampled=1)
    ).seconds
    dec = step_cost(
        ctx,
        "colocated",
        Aggregates(decode_seqs=batch, decode_ctx=batch * (isl + osl // 2), sampled=batch),
    ).seconds
    capacity = 1.0 / (osl * dec / batch + pre_per_req)
    return pre_one * 1e3, one * 1e3, capacity, 1.0 / pre_per_req, batch / (osl * dec)


def _device_hour_usd(hw: Any, pricing: str) -> float | None:
    """$/device-hour for ordering candidates: on-demand price, else the cheapest catalog
    on-demand price, else purchase over 3 years."""
    if hw.price_hour_usd:
        return float(hw.price_hour_usd)
    from servesim.specs.cost import load_providers

    listed = [d[hw.name].on_demand for d in load_providers().values()
              if hw.name in d and d[hw.name].on_demand]  # fmt: skip
    if listed:
        return float(min(listed))
    if hw.purchase_usd:
        return float(hw.purchase_usd) / (3 * 8760.0)  # straight-line over a 3-year life
    if (
        hw.purchase_usd is None
    ):  # no market price at all: the bottom-up price (servesim.accounting.hwcost)
        from servesim.accounting.hwcost import purchase_or_none

        bottom_up = purchase_or_none(hw)
        return bottom_up / (3 * 8760.0) if bottom_up is not None else None
    return None


def _prune(f: Family, targets) -> str | None:
    for metric, _p, ms in targets:
        if metric == "ttft_ms" and f.ttft_floor_ms > ms:
            return f"TTFT floor {f.ttft_floor_ms:.0f} ms (one prefill alone) > {ms:g}"
        if metric == "tpot_ms" and f.tpot_floor_ms > ms:
            return f"TPOT floor {f.tpot_floor_ms:.1f} ms (decode batch 1) > {ms:g}"
    return None


# --------------------------------------------------------------------------- candidates


def _shapes(f: Family, rate: float, extra: int) -> list[dict[str, int]]:
    """Replica counts to try: from the capacity bound up (colocated), or P and D counts (pd)."""
    if f.mode == "pd":
        p0 = max(1, math.ceil(rate / f.prefill_rps))
        d0 = max(1, math.ceil(rate / f.decode_rps))
        if max(p0, d0) > MAX_INSTANCES:  # a pool that large is refused by load_config anyway
            return []
        return [
            {"prefill": p, "decode": d}
            for p in range(max(1, p0 - 1), p0 + extra + 1)
            for d in range(max(1, d0 - 1), d0 + extra + 1)
        ]
    r0 = max(1, math.ceil(rate / f.capacity_rps))
    if r0 > MAX_INSTANCES:
        return []
    # the capacity is an estimate: fewer replicas are tried too (cheapest first; a family stops
    # at its first count that meets the SLO)
    return [{"instances": r} for r in range(max(1, r0 // 2), r0 + extra + 1)]


def _spec_families(f: Family, options: Any) -> list[Family]:
    """``f`` once per speculative option (None: without). With k drafts a step emits at most
    k+1 tokens, so the TPOT floor of a speculative family is the plain floor / (k+1): still a
    lower bound for pruning. AF deployments are left without speculation."""
    out = []
    for sp in options or (None,):
        if sp is None:
            out.append(f)
        elif f.mode != "af":
            k = int(sp.get("num_speculative_tokens", 1)) if isinstance(sp, Mapping) else 1
            g = copy.copy(f)
            g.speculative = dict(sp) if isinstance(sp, Mapping) else sp
            g.tpot_floor_ms = f.tpot_floor_ms / (k + 1)
            out.append(g)
    return out


def _check_speculative(model: str, options: Any) -> None:
    """Each speculative option parses as a pool's ``speculative`` (one SpecError otherwise)."""
    from servesim.specs.model import load_model
    from servesim.specs.speculative import parse_speculative

    for i, sp in enumerate(options or ()):
        if sp is not None:
            parse_speculative(sp, load_model(model), "plan", f"speculative.{i}")


def _spec_label(f: Family) -> str:
    sp = f.speculative
    if not isinstance(sp, Mapping):
        return ""
    return f"{sp.get('method')}-k{sp.get('num_speculative_tokens')}"


def _devices(f: Family, shape: Mapping[str, int]) -> int:
    if f.dec is not None:
        return hetero.devices(f, shape)
    # an af replica is one attention and one FFN instance, each of tp x pp devices
    return f.tp * f.pp * sum(shape.values()) * (2 if f.mode == "af" else 1)


def _config(a: Mapping, f: Family, shape: Mapping[str, int], traffic: Mapping) -> dict[str, Any]:
    sched = {"policy": "sarathi", "max_num_seqs": f.cap, "max_num_batched_tokens": f.mbt}
    if a.get("engine"):  # the engine's scheduler defaults and kernels; the cap stays searched
        sched = {"engine": a["engine"], "max_num_seqs": f.cap}
        if f.mbt != BUDGET:  # a searched budget (SRAM machines) is kept
            sched["max_num_batched_tokens"] = f.mbt
    par = {"tp": f.tp, "pp": f.pp, "ep": f.ep}

    def pool(role: str, n: int) -> dict[str, Any]:
        return {
            "role": role,
            "hardware": f.hardware,
            "instances": n,
            "parallelism": dict(par),
            "scheduler": dict(sched),
        }

    if f.mode == "colocated":
        dep: dict[str, Any] = {"pools": [pool("colocated", shape["instances"])]}
    elif f.dec is not None:
        dep = {"pools": [pool("prefill", shape["prefill"]),
                         hetero.decode_pool(f, shape["decode"], sched)]}  # fmt: skip
    elif f.mode == "pd":
        dep = {"pools": [pool("prefill", shape["prefill"]), pool("decode", shape["decode"])]}
    else:
        dep = {"pools": [pool("attention", shape["instances"]), pool("ffn", shape["instances"])]}
    if f.speculative is not None:  # speculation runs where requests decode
        dep["pools"][-1]["speculative"] = copy.deepcopy(f.speculative)
    return {
        "model": a["model"],
        "dtype": a["dtype"],
        "deployment": dep,
        "workload": copy.deepcopy(traffic["workload"]),
        "slo": copy.deepcopy(a["slo"]),
        "cost": {"pricing": search_pricing(a["pricing"])},
        "seed": int(a["seed"]),
    }
