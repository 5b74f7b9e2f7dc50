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

Traffic patterns (planning assumptions, not measurements; the simulated rate is the peak):
steady = flat (peak = mean), business-hours = the day's tokens in 10 busy hours (peak = 2.4 x
mean), bursty = peak 3 x mean with gamma inter-arrivals of CV 2.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from servesim._callable import make_callable
from servesim._files import check_out_path, write_atomic
from servesim.specs.common import SpecError
from servesim.specs.cost import PRICING_MODELS
from servesim.specs.limits import MAX_INSTANCES

PATTERNS: dict[str, dict[str, Any]] = {
    "steady": {"peak_to_avg": 1.0, "process": "poisson"},
    "business-hours": {"peak_to_avg": 24.0 / 10.0, "process": "poisson"},
    "bursty": {"peak_to_avg": 3.0, "process": "gamma", "cv": 2.0},
}
MODES = ("colocated", "pd", "af")
TP_CHOICES = (1, 2, 4, 8)
CAPS = (64, 256)  # max_num_seqs batching caps tried
HOURS_PER_MONTH = 730.0  # 8760 h / 12
_STAT = {"mean": "mean", "p50": "median", "median": "median", "p90": "p90", "p95": "p95",
         "p99": "p99", "p99.9": "p99_9"}  # fmt: skip

Runner = Callable[[Mapping[str, Any]], Mapping[str, Any]]


@dataclass
class Family:
    """Hardware x parallelism x batching cap x mode, with its analytic bounds."""

    mode: str
    hardware: str
    tp: int
    ep: int
    cap: int
    price_hour: float  # per device, for ordering only
    ttft_floor_ms: float
    tpot_floor_ms: float
    capacity_rps: float  # one replica (colocated) or per prefill/decode instance pair basis
    prefill_rps: float = 0.0  # PD: one prefill instance
    decode_rps: float = 0.0  # PD: one decode instance


@dataclass
class PlanResult:
    inputs: dict[str, Any]
    candidates: pd.DataFrame  # every simulated candidate, cheapest estimate first
    top: pd.DataFrame  # the best `top` that met the SLO, by monthly cost
    fronts: dict[str, pd.DataFrame]
    notes: list[str]
    best_config: dict[str, Any] | None
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)  # candidate id -> config

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": self.inputs,
            "top": _records(self.top),
            "candidates": _records(self.candidates),
            "notes": self.notes,
            "best_config": self.best_config,
        }

    def to_dir(self, path: str | Path) -> Path:
        """plan.json, candidates.csv, pareto_*.csv and pareto_*.png, best_config.yaml."""
        import yaml

        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        write_atomic(
            out / "plan.json", json.dumps(self.to_dict(), indent=2, default=_json_default) + "\n"
        )
        write_atomic(out / "candidates.csv", self.candidates.to_csv(index=False))
        for name, front in self.fronts.items():
            write_atomic(out / f"pareto_{name}.csv", front.to_csv(index=False))
        if self.best_config is not None:
            write_atomic(
                out / "best_config.yaml", yaml.safe_dump(self.best_config, sort_keys=False)
            )
        write_front_figures(self, out)
        return out


def _records(df: pd.DataFrame) -> list[dict]:
    return json.loads(df.to_json(orient="records"))


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    return str(o)


# --------------------------------------------------------------------------- workload and SLO


def slo_targets(slo: Mapping[str, Any]) -> list[tuple[str, str, float]]:
    """{"ttft_ms": {"p90": 500}} -> [("ttft_ms", "p90", 500.0)] (validated)."""
    out = []
    for metric, entry in (slo or {}).items():
        if metric not in ("ttft_ms", "tpot_ms", "e2el_ms") or not isinstance(entry, Mapping):
            raise SpecError(
                "plan",
                f"slo.{metric}",
                entry,
                "metric one of ttft_ms, tpot_ms, e2el_ms with {percentile: ms}",
            )
        for pct, ms in entry.items():
            bad = not isinstance(ms, (int, float)) or isinstance(ms, bool)
            if pct not in _STAT or bad or not math.isfinite(ms) or ms <= 0:
                raise SpecError(
                    "plan",
                    f"slo.{metric}.{pct}",
                    ms,
                    "percentile one of " + ", ".join(_STAT) + " and a positive ms target",
                )
            out.append((metric, str(pct), float(ms)))
    if not out:
        raise SpecError("plan", "slo", slo, "at least one target, e.g. --slo-tpot-p99 50")
    return out


def slo_check(summary: Mapping[str, Any], targets) -> tuple[bool, list[str], float]:
    """(all met, failure texts, smallest headroom = min(target/value) - 1)."""
    fails, head = [], math.inf
    for metric, pct, ms in targets:
        value = summary.get(f"{metric}_{_STAT[pct]}")
        if value is None or not math.isfinite(float(value)):
            fails.append(f"{metric[:-3].upper()} {pct} missing")
            head = min(head, -1.0)
            continue
        head = min(head, ms / max(float(value), 1e-9) - 1.0)
        if float(value) > ms:
            fails.append(f"{metric[:-3].upper()} {pct} {float(value):.0f} ms > {ms:g}")
    done, total = summary.get("completed"), summary.get("num_requests")
    if done is not None and total and done < total:
        fails.append(f"{summary['num_requests'] - summary['completed']} requests unfinished")
    return not fails, fails, head


def _num_requests(a: Mapping[str, Any], rate: float) -> int:
    """Requests per confirming run: given, or a minute of traffic at the design rate within
    [300, 2000] (a run much shorter than a minute hides queueing at high rates)."""
    if a.get("num_requests"):
        return int(a["num_requests"])
    return int(min(max(300, math.ceil(rate * 60.0)), 2000))


def _traffic(a: Mapping[str, Any]) -> dict[str, Any]:
    """Design rate (req/s, what is simulated), mean rate, lengths and the workload block."""
    for key in ("rate", "tokens_per_day", "speedup"):
        v = a.get(key)
        if v is not None and not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise SpecError("plan", key, v, "must be a positive number")
    if a.get("trace"):
        from servesim.workload.traces import trace_stats

        st = trace_stats(a["trace"])
        speed = float(a.get("speedup") or 1.0)
        rate = float(st["rate_rps"]) * speed
        if not math.isfinite(rate) or rate <= 0:  # every request at one instant: no rate
            raise SpecError("plan", "trace", str(a["trace"]),
                            "spans no time (all requests arrive at once): its rate is undefined")  # fmt: skip
        n = _num_requests(a, rate)
        wl = {"trace": {"path": str(a["trace"]), "speedup": speed}, "num_requests": n}
        return {
            "design_rps": rate,
            "avg_rps": rate,
            "isl": st["input_mean"],
            "osl": st["output_mean"],
            "workload": wl,
        }
    isl, osl = int(a["isl"]), int(a["osl"])
    if isl < 1 or osl < 1:
        raise SpecError("plan", "isl/osl", f"{isl}/{osl}", "must be whole numbers >= 1")
    pat = PATTERNS.get(a["pattern"])
    if pat is None:
        raise SpecError("plan", "pattern", a["pattern"], "one of " + ", ".join(PATTERNS))
    if a.get("rate"):
        avg = float(a["rate"])
        design = avg * (pat["peak_to_avg"] if a.get("tokens_per_day") else 1.0)
    elif a.get("tokens_per_day"):
        avg = float(a["tokens_per_day"]) / 86400.0 / (isl + osl)
        design = avg * pat["peak_to_avg"]
    else:
        raise SpecError("plan", "workload", None, "give --tokens-per-day, --rate or --trace")
    arrivals: dict[str, Any] = {"process": pat["process"], "rate": design}
    if "cv" in pat:
        arrivals["cv"] = pat["cv"]
    lengths = a.get("lengths") or {
        "input": {"dist": "fixed", "mean": isl},
        "output": {"dist": "fixed", "mean": osl},
    }
    wl = {"arrivals": arrivals, "lengths": lengths, "num_requests": _num_requests(a, design)}
    return {"design_rps": design, "avg_rps": avg, "isl": isl, "osl": osl, "workload": wl}


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
        hw = load_hardware(hw_name)
        price = _device_hour_usd(hw, a["pricing"])
        if price is None:
            notes.append(f"{hw.name}: no price for pricing={a['pricing']}; skipped")
            continue
        for tp in [t for t in a["tp"] or TP_CHOICES if t <= hw.scaleup_devices]:
            for ep in sorted({1, tp}) if moe else [1]:
                ctx = CostContext(
                    model, hw, Parallelism(tp=tp, ep=ep), dtypes, float(hw.overhead_s)
                )
                try:
                    memory.check_fit(ctx, 0.9, "colocated", "plan")
                except SpecError as exc:
                    notes.append(f"{hw.name} tp{tp} ep{ep}: {str(exc).split(': ', 2)[-1]}")
                    continue
                kv = memory.kv_capacity_tokens(ctx, 0.9, "colocated")
                for cap in a["caps"]:
                    b = _bounds(ctx, isl, osl, min(cap, kv // (isl + osl)))
                    if b is None:
                        notes.append(f"{hw.name} tp{tp}: KV holds no {isl + osl}-token request")
                        continue
                    for mode in a["modes"]:
                        if mode != "af" or moe:
                            fams.append(Family(mode, hw.name, tp, ep, cap, price, *b))
    return fams


def _bounds(ctx: Any, isl: int, osl: int, batch: int) -> tuple[float, ...] | None:
    """(TTFT floor ms, TPOT floor ms, replica capacity, prefill-instance rps, decode-instance rps).

    Floors: one prefill alone, a decode step of batch 1. Capacity: prefills batched under the
    8192-token budget stall the running batch; decode yields `batch` tokens per step of the
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

    k = max(1, min(8192 // isl, batch))
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
    """$/device-hour for ordering candidates: on-demand price, else purchase over 3 years."""
    if hw.price_hour_usd:
        return float(hw.price_hour_usd)
    if pricing != "cloud" and hw.purchase_usd:
        return float(hw.purchase_usd) / (3 * 8760.0)  # straight-line over a 3-year life
    return None


def _prune(f: Family, targets) -> str | None:
    for metric, _pct, ms in targets:
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


def _devices(f: Family, shape: Mapping[str, int]) -> int:
    # an af replica is one attention and one FFN instance, each of tp devices
    return f.tp * sum(shape.values()) * (2 if f.mode == "af" else 1)


def _config(a: Mapping, f: Family, shape: Mapping[str, int], traffic: Mapping) -> dict[str, Any]:
    sched = {"policy": "sarathi", "max_num_seqs": f.cap, "max_num_batched_tokens": 8192}
    par = {"tp": f.tp, "pp": 1, "ep": f.ep}

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
    elif f.mode == "pd":
        dep = {"pools": [pool("prefill", shape["prefill"]), pool("decode", shape["decode"])]}
    else:
        dep = {"pools": [pool("attention", shape["instances"]), pool("ffn", shape["instances"])]}
    return {
        "model": a["model"],
        "dtype": a["dtype"],
        "deployment": dep,
        "workload": copy.deepcopy(traffic["workload"]),
        "slo": copy.deepcopy(a["slo"]),
        "cost": {"pricing": a["pricing"]},
        "seed": int(a["seed"]),
    }


def default_runner(config: Mapping[str, Any]) -> Mapping[str, Any]:
    from servesim.result import simulate

    return simulate(dict(config)).summary


PLAN_DEFAULTS: dict[str, Any] = {
    "tokens_per_day": None, "pattern": "steady", "trace": None, "speedup": None, "rate": None,
    "isl": 1024, "osl": 256, "lengths": None, "slo": None, "hardware": ("h100-sxm",),
    "dtype": "bf16", "pricing": "cloud", "modes": ("colocated",), "tp": None, "caps": CAPS,
    "top": 5, "num_requests": None, "max_sims": 40, "extra_replicas": 2, "seed": 0,
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
    targets = slo_targets(a["slo"])
    if out is not None:
        check_out_path(out, "plan", is_dir=True)
    traffic = _traffic(a)
    notes: list[str] = []
    fams = []
    families = _families(a, traffic, notes)
    if not families:  # nothing fits or nothing is priced: a bad input, not an empty plan
        why = notes[0] if notes else "no hardware given"
        raise SpecError("plan", "hardware", ",".join(a["hardware"]), f"no deployment of {model} "
                        f"can run ({len(notes)} tried); first: {why}")  # fmt: skip
    for f in families:
        why = _prune(f, targets)
        if why:
            notes.append(f"pruned {f.mode} {f.hardware} tp{f.tp} cap{f.cap}: {why}")
        else:
            fams.append(f)
    rows, configs = _search(a, fams, traffic, targets, runner or default_runner, notes)
    return _finish(a, traffic, rows, configs, notes, out)


def _search(a, fams, traffic, targets, runner, notes) -> tuple[list[dict], dict[str, dict]]:
    rate = traffic["design_rps"]
    queue = []
    for f in fams:
        shapes = _shapes(f, rate, int(a["extra_replicas"]))
        if not shapes:
            notes.append(f"skipped {f.mode} {f.hardware} tp{f.tp} cap{f.cap}: needs more than "
                         f"{MAX_INSTANCES:,} replicas (the cap on one pool)")  # fmt: skip
        for shape in shapes:
            est = _devices(f, shape) * f.price_hour * HOURS_PER_MONTH
            queue.append((est, f, shape))
    queue.sort(
        key=lambda q: (q[0], q[1].mode, q[1].hardware, q[1].tp, q[1].cap, sorted(q[2].items()))
    )
    rows: list[dict] = []
    configs: dict[str, dict] = {}
    seen: set[str] = set()
    met_costs: list[float] = []
    unsupported: set[str] = set()
    met_families: set[tuple] = set()
    for est, f, shape in queue:
        if len(rows) >= int(a["max_sims"]):
            notes.append(f"stopped after max_sims={a['max_sims']} simulations")
            break
        if len(met_costs) >= int(a["top"]) and est > sorted(met_costs)[int(a["top"]) - 1]:
            break  # every cheaper estimate has been simulated
        fam_key = (f.mode, f.hardware, f.tp, f.ep, f.cap)
        cid = f"{f.mode}-{f.hardware}-tp{f.tp}-ep{f.ep}-cap{f.cap}-" + "-".join(
            f"{k[0]}{v}" for k, v in sorted(shape.items())
        )
        if f.mode in unsupported or cid in seen or fam_key in met_families:
            continue
        seen.add(cid)
        cfg = _config(a, f, shape, traffic)
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
        if row["meets_slo"]:
            met_costs.append(row["monthly_usd"])
            met_families.add(fam_key)  # more replicas of the same family cost more
    return rows, configs


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
    if met:
        reason = (
            f"meets SLO with {_pct(headroom)} headroom at {_pct(util)} of estimated capacity; "
            f"{devices} x {f.hardware} (TP{f.tp}, {shape_txt}, max_num_seqs {f.cap})"
        )
    else:
        reason = "; ".join(fails)
    return {
        "id": cid, "mode": f.mode, "hardware": f.hardware, "tp": f.tp, "ep": f.ep,
        "max_num_seqs": f.cap, **{f"n_{k}": v for k, v in shape.items()}, "devices": devices,
        "monthly_usd": monthly, "estimated_monthly_usd": est,
        "usd_per_mtok": summary.get("usd_per_mtok_blended"),
        "utilisation": min(util, 10.0), "slo_attainment": summary.get("goodput_fraction"),
        "meets_slo": bool(met), "headroom": headroom,
        "idle_waste_usd": max(0.0, 1.0 - avg_util) * monthly,
        "output_tps_per_device": out_tps / devices if devices else None,
        "tokens_per_s_per_user": 1000.0 / tpot_med if tpot_med else None,
        **lat, "reason": reason,
    }  # fmt: skip


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%" if math.isfinite(x) else "-"


# --------------------------------------------------------------------------- results


def pareto(
    df: pd.DataFrame, x: str, y: str, *, max_x: bool = False, max_y: bool = False
) -> pd.DataFrame:
    """Rows not dominated in (x, y); minimise both unless max_x/max_y."""
    d = df.dropna(subset=[x, y])
    if d.empty:
        return d
    sx = -d[x] if max_x else d[x]
    sy = -d[y] if max_y else d[y]
    order = sorted(range(len(d)), key=lambda i: (sx.iloc[i], sy.iloc[i]))
    keep, best = [], math.inf
    for i in order:
        if sy.iloc[i] < best:
            keep.append(i)
            best = sy.iloc[i]
    return d.iloc[keep].reset_index(drop=True)


def _finish(a, traffic, rows, configs, notes, out) -> PlanResult:
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
            notes.append(
                "no simulated candidate met the SLO: add hardware, replicas (extra_replicas) or relax it"
            )
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
    result = PlanResult(inputs, cand, top, fronts, notes, best, configs)
    if out is not None:
        result.to_dir(out)
    return result


def write_front_figures(result: PlanResult, out: Path) -> list[Path]:
    """pareto_cost_latency.png and pareto_throughput_interactivity.png (drawn by servesim.report)."""
    from servesim.report import pareto_figures

    paths = []
    for name, fig in pareto_figures(result.candidates, result.inputs["latency_key"]).items():
        p = out / f"pareto_{name}.png"
        p.write_bytes(fig.png)
        paths.append(p)
    return paths


def format_plan(result: PlanResult) -> str:
    """The ranked table printed by `servesim plan`."""
    i = result.inputs
    lines = [
        f"plan for {i['model']}: {i['design_rps']:.3g} req/s design rate "
        f"(mean {i['avg_rps']:.3g}), ISL {i['mean_isl']:.0f} / OSL {i['mean_osl']:.0f}; "
        f"{len(result.candidates)} candidates simulated"
    ]
    if result.top.empty:
        lines.append("no candidate met the SLO")
    for rank, r in enumerate(result.top.to_dict("records"), 1):
        usd_mtok = "-" if r.get("usd_per_mtok") is None else f"${r['usd_per_mtok']:.3g}/Mtok"
        att = r.get("slo_attainment")
        att_s = (
            "-"
            if att is None or (isinstance(att, float) and math.isnan(att))
            else f"{100 * att:.1f}%"
        )
        lines.append(f"{rank}. {r['id']}")
        lines.append(
            f"   ${r['monthly_usd']:,.0f}/month, {usd_mtok}, {r['devices']} device{'s' if r['devices'] != 1 else ''}, "
            f"utilisation {_pct(r['utilisation'])}, SLO attainment {att_s}, "
            f"headroom {_pct(r['headroom'])}, idle waste ${r['idle_waste_usd']:,.0f}/month"
        )
        lines.append(f"   {r['reason']}")
    if result.notes:
        lines.append("notes:")
        lines += [f"  - {n}" for n in result.notes[:20]]
        if len(result.notes) > 20:
            lines.append(f"  ... {len(result.notes) - 20} more (plan.json)")
    return "\n".join(lines)


make_callable(__name__, plan)
