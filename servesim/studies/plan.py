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
from servesim.specs.config import DEFAULT_MAX_NUM_BATCHED_TOKENS as BUDGET
from servesim.specs.cost import PRICING_MODELS
from servesim.specs.dtypes import DTYPE_BYTES
from servesim.specs.engines import engine_kernels
from servesim.specs.limits import MAX_INSTANCES
from servesim.studies.pareto import pareto  # also servesim.plan.pareto
from servesim.studies.planning import hetero
from servesim.studies.planning.day import autoscale_policy, day_profile, levels
from servesim.studies.planning.layouts import layouts, unpriced_note
from servesim.studies.planning.options import billing_for_pricing, has_api, search_pricing
from servesim.studies.planning.ranking import price_the_day
from servesim.studies.planning.slo import _STAT, slo_check, slo_targets
from servesim.studies.planning.text import _pct, day_columns, day_info, format_plan  # noqa: F401  (public names of this module)

MODES = ("colocated", "pd", "af")
CAPS = (64, 256)  # max_num_seqs batching caps tried
HOURS_PER_MONTH = 730.0  # 8760 h / 12

Runner = Callable[[Mapping[str, Any]], Mapping[str, Any]]


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
    mbt: int = 8192  # max_num_batched_tokens (smaller where only a small budget fits: SRAM)
    dec: Any = None  # heterogeneous PD: the decode side's Family (planning.hetero)
    speculative: Any = None  # a pool `speculative` mapping tried on the decoding pool, or None


@dataclass
class PlanResult:
    inputs: dict[str, Any]
    candidates: pd.DataFrame  # every simulated candidate, cheapest estimate first
    top: pd.DataFrame  # the best `top` that met the SLO, by monthly cost
    fronts: dict[str, pd.DataFrame]
    notes: list[str]
    best_config: dict[str, Any] | None
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)  # candidate id -> config
    options: list[dict[str, Any]] = field(default_factory=list)  # ranked, every billing model
    callouts: dict[str, int | None] = field(default_factory=dict)  # name -> index in options
    day: dict[str, Any] = field(default_factory=dict)  # profile, levels, policy, per-deployment

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": self.inputs,
            "top": _records(self.top),
            "candidates": _records(self.candidates),
            "notes": self.notes,
            "best_config": self.best_config,
            "options": self.options,
            "callouts": {
                k: (None if i is None else self.options[i]["rank"])
                for k, i in self.callouts.items()
            },  # fmt: skip
            "day": self.day,
            "launch_commands": _launch(self.best_config),
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
            from servesim.studies.planning.export import commands, launch_text

            write_atomic(
                out / "best_config.yaml", yaml.safe_dump(self.best_config, sort_keys=False)
            )
            write_atomic(out / "launch_commands.sh", launch_text(self.best_config))
            write_atomic(
                out / "launch_commands.json",
                json.dumps(commands(self.best_config), indent=2) + "\n",
            )
        write_atomic(out / "options.csv", pd.DataFrame(self.options).to_csv(index=False))
        write_front_figures(self, out)
        return out


def _launch(cfg: Mapping[str, Any] | None) -> dict[str, list[str]] | None:
    from servesim.studies.planning.export import commands

    return commands(cfg) if cfg else None


def _records(df: pd.DataFrame) -> list[dict]:
    return json.loads(df.to_json(orient="records"))


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    return str(o)


# --------------------------------------------------------------------------- workload and SLO


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
        return _trace_traffic(a)
    isl, osl = int(a["isl"]), int(a["osl"])
    if isl < 1 or osl < 1:
        raise SpecError("plan", "isl/osl", f"{isl}/{osl}", "must be whole numbers >= 1")
    pat = day_profile(a["pattern"], a.get("hourly"))
    if a.get("rate"):
        avg = float(a["rate"])
    elif a.get("tokens_per_day"):
        avg = float(a["tokens_per_day"]) / 86400.0 / (isl + osl)
    else:
        raise SpecError("plan", "workload", None, "give --tokens-per-day, --rate or --trace")
    design = avg * pat.peak_to_mean
    arrivals: dict[str, Any] = {"process": pat.process, "rate": design}
    if pat.cv is not None:
        arrivals["cv"] = pat.cv
    lengths = a.get("lengths") or {
        "input": {"dist": "fixed", "mean": isl},
        "output": {"dist": "fixed", "mean": osl},
    }
    wl = {"arrivals": arrivals, "lengths": lengths, "num_requests": _num_requests(a, design)}
    return {"design_rps": design, "avg_rps": avg, "isl": isl, "osl": osl, "workload": wl,
            **_day(a, pat, avg)}  # fmt: skip


def _trace_traffic(a: Mapping[str, Any]) -> dict[str, Any]:
    """A trace of a day or more: its hourly shape (arrivals binned by hour, folded onto one day);
    a shorter one: its mean rate held over the day. The confirming run replays it sped up to the
    peak hour's rate; other levels replay it at theirs (the trace's own requests and lengths)."""
    from servesim.studies.planning.day import trace_profile
    from servesim.workload.traces import frame_stats, load_trace

    df = load_trace(a["trace"])
    st = frame_stats(df)
    speed = float(a.get("speedup") or 1.0)
    prof = trace_profile(df["arrival_s"].to_numpy()) or day_profile("flat")
    rate = float(st["rate_rps"]) * speed
    if not math.isfinite(rate) or rate <= 0:  # every request at one instant: no rate
        raise SpecError("plan", "trace", str(a["trace"]),
                        "spans no time (all requests arrive at once): its rate is undefined")  # fmt: skip
    design = rate * prof.peak_to_mean
    n = _num_requests(a, design)
    wl = {"trace": {"path": str(a["trace"]), "speedup": speed * prof.peak_to_mean},
          "num_requests": n}  # fmt: skip
    return {"design_rps": design, "avg_rps": rate, "isl": st["input_mean"],
            "osl": st["output_mean"], "workload": wl, **_day(a, prof, rate)}  # fmt: skip


def _day(a: Mapping[str, Any], profile: Any, avg: float) -> dict[str, Any]:
    return {"profile": profile, "levels": levels(profile, avg),
            "policy": autoscale_policy(a.get("autoscale"))}  # fmt: skip


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
        for tp, pp, ep, mbt in lays:
            kern = engine_kernels(
                a.get("engine"), hw, DTYPE_BYTES[dtypes.kv_cache], DTYPE_BYTES[dtypes.weights]
            )
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


def _bounds(ctx: Any, isl: int, osl: int, batch: int, mbt: int = 8192) -> tuple[float, ...] | None:
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


def write_front_figures(result: PlanResult, out: Path) -> list[Path]:
    """pareto_cost_latency.png and pareto_throughput_interactivity.png (drawn by servesim.report)."""
    from servesim.studies.report import pareto_figures

    paths = []
    for name, fig in pareto_figures(result.candidates, result.inputs["latency_key"]).items():
        p = out / f"pareto_{name}.png"
        p.write_bytes(fig.png)
        paths.append(p)
    return paths


make_callable(__name__, plan)
