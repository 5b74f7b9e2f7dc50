"""The plan's second phase: the day of every deployment that met the SLO, priced every way."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from servesim.studies.planning.day import DAYS_PER_MONTH, AutoscalePolicy, DayProfile, Level
from servesim.studies.planning.daysim import simulate_day
from servesim.studies.planning.options import api_options, deployment_options, rank


def row_pools(row: Mapping[str, Any], cfg: Mapping[str, Any]) -> list[tuple[str, int, int]]:
    """(hardware, replicas, devices per replica) of each pool of a candidate's config; an
    attention/FFN pair counts as one pool of two instances' devices per replica."""
    out: list[tuple[str, int, int]] = []
    for p in cfg["deployment"]["pools"]:
        par = p.get("parallelism") or {}
        d = int(par.get("tp", 1)) * int(par.get("pp", 1))
        if p["role"] == "ffn" and out:
            hw, n, d0 = out[-1]
            out[-1] = (hw, n, d0 + d)
            continue
        out.append((str(p["hardware"]), int(p["instances"]), d))
    return out


def day_requests(a: Mapping[str, Any]) -> int:
    """Requests per level window: given (day_requests), else 300 (a few hundred requests give a
    steady state at every level; docs/planning.md has the error against a whole day)."""
    return int(a.get("day_requests") or 300)


def price_the_day(a: Mapping[str, Any], traffic: Mapping[str, Any], top: pd.DataFrame,
                  configs: Mapping[str, dict], peaks: Mapping[str, Mapping[str, Any]],
                  targets, runner: Callable, notes: list[str]) -> dict[str, Any]:  # fmt: skip
    """Options ranked across providers and billing models, call-outs, per-deployment day stats."""
    from servesim.specs.hardware import load_hardware

    profile: DayProfile = traffic["profile"]
    lvls: list[Level] = traffic["levels"]
    policy: AutoscalePolicy = traffic["policy"]
    lat_key = traffic["latency_key"]
    options: list[dict[str, Any]] = []
    days: dict[str, dict[str, Any]] = {}
    wanted_p = set(a.get("providers") or ())
    wanted_b = set(a.get("billing") or ())
    tokens_in = tokens_out = None
    for row in top.to_dict("records"):
        if not row.get("meets_slo"):
            continue
        cfg = configs[row["id"]]
        pools = [(load_hardware(h), n, d) for h, n, d in row_pools(row, cfg)]
        idle_w = sum(h.idle_W * n * d for h, n, d in pools) / int(row["devices"])
        pue = float(peaks[row["id"]].get("pue") or 1.0)
        day = simulate_day(cfg, lvls, peaks[row["id"]], runner, day_requests(a), targets,
                           int(row["devices"]), idle_w, pue, traffic["isl"], traffic["osl"])  # fmt: skip
        day_auto = None
        top_rate = lvls[0].rate
        if any(math.ceil(n * lv.rate / top_rate - 1e-9) < n for _, n, _ in pools for lv in lvls):
            # the autoscaled fleet is smaller in some level: simulate its day too
            day_auto = simulate_day(cfg, lvls, peaks[row["id"]], runner, day_requests(a), targets,
                                    int(row["devices"]), idle_w, pue, traffic["isl"],
                                    traffic["osl"], floor=max(policy.min_replicas, 1))  # fmt: skip
        tokens_in, tokens_out = day.tokens_in, day.tokens_out
        days[row["id"]] = {
            "busy_fraction": day.busy_device_s / (int(row["devices"]) * 86400.0),
            "energy_kwh_day": day.energy_kwh, "slo_attainment": day.attainment,
            "latency": day.latency, "levels": day.level_rows,
            "autoscaled": None if day_auto is None else {
                "slo_attainment": day_auto.attainment, "latency": day_auto.latency,
                "levels": day_auto.level_rows},
        }  # fmt: skip
        rows, why = deployment_options(row, day, profile, policy, pools, lat_key, day_auto)
        if why:
            notes.append(why)
        options += rows
    if tokens_in is None:  # nothing simulated met the SLO: the volume still prices the APIs
        req = sum(lv.requests for lv in lvls)
        tokens_in, tokens_out = req * traffic["isl"], req * traffic["osl"]
    options += api_options(a["model"], tokens_in, tokens_out)
    options = [o for o in options if (not wanted_p or o["provider"] in wanted_p)
               and (not wanted_b or o["billing"] in wanted_b)]  # fmt: skip
    if not options and (wanted_b or wanted_p):
        hws = sorted({str(r["hardware"]) for r in top.to_dict("records") if r.get("meets_slo")})
        notes.insert(0, "no option left after the filters (billing: "
                     f"{', '.join(sorted(wanted_b)) or 'any'}; providers: "
                     f"{', '.join(sorted(wanted_p)) or 'any'}): no catalog price of that kind for "
                     f"{', '.join(hws) or 'the deployments that met the SLO'}, and no such API "
                     f"for {a['model']} (pricing/providers.yaml, pricing/api_prices.yaml)")  # fmt: skip
    ranked, calls = rank(options)
    return {
        "options": ranked,
        "callouts": calls,
        "days": days,
        "tokens_per_day": tokens_in + tokens_out,
        "tokens_per_month": (tokens_in + tokens_out) * DAYS_PER_MONTH,
    }


def day_usd_per_mtok(monthly_usd: float | None, tokens_per_month: float) -> float | None:
    if monthly_usd is None or not tokens_per_month or not math.isfinite(monthly_usd):
        return None
    return monthly_usd / (tokens_per_month / 1e6)


def format_options(opts: list[dict[str, Any]], calls: Mapping[str, int | None], n: int = 12) -> list[str]:  # fmt: skip
    """The ranked options as text lines for `servesim plan`."""
    lines = ["options across providers and billing models (a month = 730 h of the simulated day):"]
    names = {i: k for k, i in calls.items() if i is not None}
    for i, o in enumerate(opts[:n]):
        met = {True: "meets SLO", False: "misses SLO", None: "SLO not simulated"}[o["meets_slo"]]
        tag = ", ".join(k for k, j in calls.items() if j == i)
        tag = f"  [{tag}]" if tag else ""
        idle = "-" if o["idle_fraction"] is None else f"{100 * o['idle_fraction']:.0f}%"
        lines.append(f"{o['rank']:>3}. {o['provider']} {o['billing']}: {o['deployment']}: "
                     f"${o['monthly_usd']:,.0f}/month, ${o['usd_per_mtok']:.3g}/Mtok, {met}, "
                     f"idle {idle}{tag}")  # fmt: skip
        lines.append(f"     {o['reason']}")
    for k, i in calls.items():
        if i is not None and i >= n:
            lines.append(f"  {k}: #{opts[i]['rank']} {opts[i]['provider']} {opts[i]['billing']}")
    del names
    if len(opts) > n:
        lines.append(f"  ... {len(opts) - n} more options (--format json or plan.json)")
    return lines
