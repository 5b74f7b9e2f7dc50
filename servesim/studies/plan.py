"""SLO-constrained capacity planning: the cheapest deployments that meet latency targets.

Inputs: a model, a workload (tokens/day with a traffic pattern, a trace, or a request rate; prompt
and output lengths), SLOs (percentile targets of TTFT/TPOT/E2EL), candidate hardware and pricing.

Search, cheap first:
1. enumerate hardware x tensor/expert parallelism that fits in memory (cost.memory.check_fit)
   x batching caps (max_num_seqs) x modes (colocated; prefill/decode pools);
2. bound each with the cost model: a TTFT floor (one prefill alone), a TPOT floor (a decode step of
   batch 1) and a capacity estimate (decode steps at the largest batch the KV cache holds, plus a
   prefill per request); a floor above the SLO prunes the family, the capacity sets the smallest
   replica count worth simulating;
3. confirm by simulation (short runs at the design rate), candidates in order of estimated cost,
   until `top` of them meet the SLO and every cheaper estimate has been tried (or `max_sims`);
4. rank the ones that meet the SLO by monthly cost (the simulation's costing, `monthly_usd`).

Traffic: a day of 24 hourly rates (servesim.studies.planning.day: flat, diurnal, business-hours, bursty,
24 given numbers, or a trace). The search confirms candidates at the peak hour's rate; the ones
that meet the SLO are then simulated over the whole day (one window per rate level) and priced
for every provider and billing model, with the per-token APIs of the model
(servesim.studies.planning.ranking): a month is 730 h of the simulated day, not of the peak.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from servesim._callable import make_callable
from servesim._files import check_out_path
from servesim.specs.common import SpecError
from servesim.specs.cost import PRICING_MODELS
from servesim.specs.limits import MAX_INSTANCES
from servesim.studies.pareto import pareto  # also servesim.plan.pareto
from servesim.studies.planning import hetero

# the parts (also importable from here, as before): candidates and bounds, traffic, the result
from servesim.studies.planning.candidates import (  # noqa: F401
    BUDGET,
    Family,
    _bounds,
    _check_speculative,
    _config,
    _device_hour_usd,
    _devices,
    _families,
    _prune,
    _shapes,
    _spec_families,
    _spec_label,
)
from servesim.studies.planning.options import billing_for_pricing, has_api
from servesim.studies.planning.ranking import price_the_day
from servesim.studies.planning.result import PlanResult, write_front_figures  # noqa: F401
from servesim.studies.planning.slo import _STAT, slo_check, slo_targets
from servesim.studies.planning.text import _pct, day_columns, day_info, format_plan  # noqa: F401  (public names of this module)
from servesim.studies.planning.traffic import _day, _num_requests, _trace_traffic, _traffic  # noqa: F401

MODES = ("colocated", "pd", "af")
CAPS = (64, 256)  # max_num_seqs batching caps tried
HOURS_PER_MONTH = 730.0  # 8760 h / 12

Runner = Callable[[Mapping[str, Any]], Mapping[str, Any]]


def default_runner(config: Mapping[str, Any]) -> Mapping[str, Any]:
    from servesim.studies.planning.daysim import samples_runner

    return samples_runner(config)


PLAN_DEFAULTS: dict[str, Any] = {
    "tokens_per_day": None, "pattern": "steady", "trace": None, "speedup": None, "rate": None,
    "isl": 1024, "osl": 256, "lengths": None, "slo": None, "hardware": ("h100-sxm",),
    "dtype": "bf16", "pricing": "cloud", "modes": ("colocated",), "tp": None, "caps": CAPS,
    "top": 5, "num_requests": None, "max_sims": 40, "extra_replicas": 2, "seed": 0,
    "engine": None,
    "hourly": None, "pp": None, "providers": None, "billing": None, "autoscale": None,
    "day_requests": None,
    "speculative": (None,),
}  # fmt: skip


def plan(
    model: str, *, runner: Runner | None = None, out: str | Path | None = None, **kwargs: Any
) -> PlanResult:
    """Search deployments for `model` (see the module doc); kwargs as PLAN_DEFAULTS."""
    unknown = sorted(set(kwargs) - set(PLAN_DEFAULTS))
    if unknown:
        raise SpecError(
            "plan", unknown[0], kwargs[unknown[0]], "unknown; allowed: " + ", ".join(PLAN_DEFAULTS)
        )
    a = {**PLAN_DEFAULTS, **{k: v for k, v in kwargs.items() if v is not None}, "model": model}
    for m in a["modes"]:
        if m not in MODES:
            raise SpecError("plan", "modes", m, "one of " + ", ".join(MODES))
    if a["pricing"] not in PRICING_MODELS:
        raise SpecError("plan", "pricing", a["pricing"], "one of " + ", ".join(PRICING_MODELS))
    a["hardware"], a["modes"] = list(a["hardware"]), list(a["modes"])
    _check_speculative(model, a["speculative"])
    targets = slo_targets(a["slo"])
    if out is not None:
        check_out_path(out, "plan", is_dir=True)
    traffic = _traffic(a)
    notes: list[str] = []
    fams = []
    families = _families(a, traffic, notes)
    unpriced = any(" fits as " in n and "no price" in n for n in notes)
    if not families and not (unpriced and has_api(model)):  # nothing fits: a bad input
        why = notes[0] if notes else "no hardware given"
        raise SpecError("plan", "hardware", ",".join(a["hardware"]), f"no deployment of {model} "
                        f"can run ({len(notes)} tried); first: {why}")  # fmt: skip
    for f in families:
        why = _prune(f, targets)
        if why:
            notes.append(f"pruned {f.mode} {f.hardware} tp{f.tp} cap{f.cap}: {why}")
        else:
            fams.append(f)
    from servesim.studies.planning.daysim import samples_runner
    from servesim.studies.planning.options import check_filters

    check_filters(a["providers"], a["billing"])
    a["billing"] = a["billing"] or billing_for_pricing(a["pricing"])
    runner = runner or samples_runner
    rows, configs, peaks = _search(a, fams, traffic, targets, runner, notes)
    return _finish(a, traffic, rows, configs, notes, out, peaks, runner)


def _search(a, fams, traffic, targets, runner, notes) -> tuple[list[dict], dict, dict]:
    rate = traffic["design_rps"]
    queue = []
    for f in fams:
        shapes = _shapes(f, rate, int(a["extra_replicas"]))
        if not shapes:
            notes.append(f"skipped {f.mode} {f.hardware} tp{f.tp} cap{f.cap}: needs more than "
                         f"{MAX_INSTANCES:,} replicas (the cap on one pool)")  # fmt: skip
        for shape in shapes:
            hour = hetero.hour_usd(f, shape) if f.dec else _devices(f, shape) * f.price_hour
            est = hour * HOURS_PER_MONTH
            queue.append((est, f, shape))
    queue.sort(
        key=lambda q: (q[0], q[1].mode, q[1].hardware, q[1].tp, q[1].pp, q[1].cap,
                       sorted(q[2].items()))
    )  # fmt: skip
    peaks: dict[str, Mapping[str, Any]] = {}
    rows: list[dict] = []
    configs: dict[str, dict] = {}
    seen: set[str] = set()
    met_costs: list[float] = []
    unsupported: set[str] = set()
    met_families: set[tuple] = set()
    from servesim._progress import Bar  # drawn on a terminal only (rate and ETA on stderr)

    bar = Bar("plan", min(len(queue), int(a["max_sims"])), "sim").start()
    for est, f, shape in queue:
        if len(rows) >= int(a["max_sims"]):
            notes.append(f"stopped after max_sims={a['max_sims']} simulations")
            break
        if len(met_costs) >= int(a["top"]) and est > sorted(met_costs)[int(a["top"]) - 1]:
            break  # every cheaper estimate has been simulated
        hw_txt = hetero.label(f) if f.dec else hetero.name(f.hardware)
        spec = _spec_label(f)
        fam_key = (f.mode, hw_txt, f.tp, f.pp, f.ep, f.cap, spec)
        pp_txt = f"-pp{f.pp}" if f.pp > 1 else ""
        cid = f"{f.mode}-{hw_txt}-tp{f.tp}{pp_txt}-ep{f.ep}-cap{f.cap}-" + "-".join(
            f"{k[0]}{v}" for k, v in sorted(shape.items())
        )
        cid += f"-{spec}" if spec else ""
        if f.mode in unsupported or cid in seen or fam_key in met_families:
            continue
        seen.add(cid)
        cfg = _config(a, f, shape, traffic)
        bar.update(len(seen))
        try:
            summary = runner(cfg)
        except SpecError as exc:
            if "not supported" in str(exc) or "not implemented" in str(exc):
                unsupported.add(f.mode)
                notes.append(f"mode {f.mode}: {exc}")
            else:
                notes.append(f"{cid}: {exc}")
            continue
        row = _row(cid, f, shape, est, summary, targets, traffic)
        rows.append(row)
        configs[cid] = cfg
        peaks[cid] = summary
        if row["meets_slo"]:
            met_costs.append(row["monthly_usd"])
            met_families.add(fam_key)  # more replicas of the same family cost more
    bar.close()
    return rows, configs, peaks


def _row(cid, f: Family, shape, est, summary, targets, traffic) -> dict[str, Any]:
    met, fails, headroom = slo_check(summary, targets)
    devices = _devices(f, shape)
    monthly = summary.get("monthly_usd")
    monthly = float(monthly) if monthly is not None else est
    if f.mode == "pd":
        capacity = min(shape["prefill"] * f.prefill_rps, shape["decode"] * f.decode_rps)
    else:
        capacity = shape.get("instances", 1) * f.capacity_rps
    util = traffic["design_rps"] / capacity if capacity > 0 else math.inf
    avg_util = traffic["avg_rps"] / capacity if capacity > 0 else math.inf
    out_tps = summary.get("output_throughput") or 0.0
    tpot_med = summary.get("tpot_ms_median")
    lat = {f"{m}_{_STAT[p]}": summary.get(f"{m}_{_STAT[p]}") for m, p, _ in targets}
    shape_txt = " + ".join(
        f"{v} {k}" if k != "instances" or v != 1 else "1 instance" for k, v in shape.items()
    )
    if f.mode == "af":
        shape_txt = f"{shape['instances']} attention + {shape['instances']} FFN instances"
    layout = f"TP{f.tp}" + (f" PP{f.pp}" if f.pp > 1 else "") + (f" EP{f.ep}" if f.ep > 1 else "")
    spec_txt = f", speculative {_spec_label(f)}" if f.speculative is not None else ""
    deployment = f"{devices} x {hetero.name(f.hardware)} ({layout}, {shape_txt}, max_num_seqs {f.cap}{spec_txt})"
    if f.dec is not None:
        deployment = f"{devices} devices: " + hetero.text(f, shape)
    if met:
        reason = (
            f"meets SLO with {_pct(headroom)} headroom at {_pct(util)} of estimated capacity; "
            + deployment
        )
    else:
        reason = "; ".join(fails)
    return {
        "id": cid, "mode": f.mode, "hardware": hetero.label(f) if f.dec else hetero.name(f.hardware), "tp": f.tp, "pp": f.pp, "ep": f.ep,
        "max_num_seqs": f.cap, **{f"n_{k}": v for k, v in shape.items()}, "devices": devices,
        "replicas": sum(shape.values()), "deployment": deployment,
        "speculative": _spec_label(f) or None,
        "monthly_usd": monthly, "estimated_monthly_usd": est,
        "usd_per_mtok": summary.get("usd_per_mtok_blended"),
        "utilisation": min(util, 10.0), "slo_attainment": summary.get("goodput_fraction"),
        "meets_slo": bool(met), "headroom": headroom,
        "idle_waste_usd": max(0.0, 1.0 - avg_util) * monthly,
        "output_tps_per_device": out_tps / devices if devices else None,
        "tokens_per_s_per_user": 1000.0 / tpot_med if tpot_med else None,
        **lat, "reason": reason,
    }  # fmt: skip


# --------------------------------------------------------------------------- results


def _finish(a, traffic, rows, configs, notes, out, peaks=None, runner=None) -> PlanResult:
    cand = pd.DataFrame(rows)
    targets = slo_targets(a["slo"])
    if cand.empty:
        top = cand
        notes.append("no candidate was simulated (all pruned or unsupported)")
    else:
        # cheapest first; at equal cost (to the cent) the larger headroom, then fewer devices
        met = cand[cand["meets_slo"]].assign(
            _usd=lambda d: d["monthly_usd"].round(2), _head=lambda d: -d["headroom"]
        )
        top = met.sort_values(["_usd", "_head", "devices", "id"], kind="stable").drop(
            columns=["_usd", "_head"]
        )
        top = top.head(int(a["top"])).reset_index(drop=True)
        if top.empty:
            c = cand.loc[cand["headroom"].idxmax()]
            notes.insert(0, f"nothing meets the SLO; closest: {c['id']} ({c['devices']} devices, "
                         f"${c['monthly_usd']:,.0f}/month): {c['reason']}; add hardware, "
                         "replicas (extra_replicas) or relax the SLO")  # fmt: skip
    lat_key = f"{targets[0][0]}_{_STAT[targets[0][1]]}"
    fronts = {}
    if not cand.empty:
        fronts["cost_latency"] = pareto(cand, "monthly_usd", lat_key)
        fronts["throughput_interactivity"] = pareto(
            cand, "tokens_per_s_per_user", "output_tps_per_device", max_x=True, max_y=True
        )
    best = configs.get(top.iloc[0]["id"]) if not top.empty else None
    inputs = {k: (list(v) if isinstance(v, tuple) else v) for k, v in a.items()}
    inputs.update(
        design_rps=traffic["design_rps"],
        avg_rps=traffic["avg_rps"],
        mean_isl=traffic["isl"],
        mean_osl=traffic["osl"],
        latency_key=lat_key,
    )
    priced = price_the_day(a, {**traffic, "latency_key": lat_key}, top, configs, peaks or {},
                           targets, runner, notes)  # fmt: skip
    top = day_columns(top, priced)
    day = day_info(traffic, priced)
    result = PlanResult(inputs, cand, top, fronts, notes, best, configs, priced["options"],
                        priced["callouts"], day)  # fmt: skip
    if out is not None:
        result.to_dir(out)
    return result


make_callable(__name__, plan)
