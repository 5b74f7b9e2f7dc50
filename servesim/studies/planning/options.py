"""One ranking across providers and billing models: every dated price for every deployment that
met the SLO, plus the per-token APIs that serve the model, priced for the same simulated day.

Billing models (docs/planning.md):
- on-demand, reserved-1y, reserved-3y, spot: the whole fleet every hour (a catalog price);
- autoscaling: the on-demand price for the replicas AutoscalePolicy keeps up per interval;
- owned: TCO (purchase over its life + energy at the day's utilisation + upkeep), every hour;
- per-token: the day's tokens at the API's input/output prices (no simulation: latency is the
  provider's; meets_slo is None, "not simulated").

Call-outs: cheapest = lowest $/month among options not known to miss the SLO; fastest = lowest
latency (the first SLO metric) among simulated options that meet it; best-balanced = the lowest
product of (cost / cheapest cost) and (latency / fastest latency) among those, i.e. the option
whose relative premium in cost and in latency together is smallest.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from typing import Any

from servesim.specs.common import SpecError
from servesim.studies.planning.day import (
    DAYS_PER_MONTH,
    AutoscalePolicy,
    DayProfile,
    DayStats,
    autoscaled_replica_s,
    autoscaled_replicas,
)

BILLINGS = ("on-demand", "reserved-1y", "reserved-3y", "spot", "autoscaling", "owned", "per-token")
_COLUMN_BILLING = (("on_demand", "on-demand"), ("reserved_1y", "reserved-1y"),
                   ("reserved_3y", "reserved-3y"), ("spot", "spot"))  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Price:
    provider: str
    billing: str
    usd_per_device_hour: float
    date: str
    source: str


# `plan --pricing X` (a costing.py pricing model) narrows the ranking to these billing models;
# "cloud" (the default) keeps every one
_PRICING_BILLING = {"api": ["per-token"], "spot": ["spot"], "reserved": ["reserved-1y", "reserved-3y"],
                    "dedicated": ["on-demand", "reserved-1y", "reserved-3y"],
                    "autoscaling": ["autoscaling"], "tco": ["owned"]}  # fmt: skip


def billing_for_pricing(pricing: str) -> list[str] | None:
    return _PRICING_BILLING.get(pricing)


def search_pricing(pricing: str) -> str:
    """The pricing the search's runs are costed with: the ones that need no provider or API name
    (the ranking prices every provider and API afterwards)."""
    return pricing if pricing in ("cloud", "tco", "autoscaling") else "cloud"


def check_filters(providers: Iterable[str] | None, billings: Iterable[str] | None) -> None:
    from servesim.specs.cost import load_api_prices, load_providers

    known = set(load_providers()) | {"list", "on-prem"}
    known |= {a.vendor.split(" (")[0].lower().split()[0] for a in load_api_prices().values()}
    for p in providers or ():
        if p not in known:
            raise SpecError(
                "plan", "providers", p, "unknown provider; one of " + ", ".join(sorted(known))
            )
    for b in billings or ():
        if b not in BILLINGS:
            raise SpecError("plan", "billing", b, "one of " + ", ".join(BILLINGS))


def hardware_prices(hw: Any, busy_fraction: float) -> list[Price]:
    """Every dated $/device-hour for ``hw``: the catalog's providers, the profile's list price,
    and owning it (TCO at the simulated utilisation) when a purchase price exists."""
    from servesim.accounting.costing import tco_breakdown
    from servesim.specs.cost import CostSpec, load_providers

    out = []
    for prov, devices in sorted(load_providers().items()):
        e = devices.get(hw.name)
        if e is None:
            continue
        for col, billing in _COLUMN_BILLING:
            v = e.column(col)
            if v is not None:
                src = f"{e.instance} {e.region}: {e.source}".strip()
                out.append(Price(prov, billing, float(v), e.date, src))
                if col == "on_demand":
                    out.append(Price(prov, "autoscaling", float(v), e.date, src))
    if hw.price_hour_usd:
        src = f"hw_profiles/{hw.name}.yaml price.hour_usd (typical list price)"
        out.append(Price("list", "on-demand", float(hw.price_hour_usd), "", src))
        out.append(Price("list", "autoscaling", float(hw.price_hour_usd), "", src))
    if hw.purchase_usd:
        spec = dataclasses.replace(CostSpec(), utilisation=min(max(busy_fraction, 0.0), 1.0))
        b = tco_breakdown(hw, 1, spec)
        how = getattr(hw, "price_source", None) or "purchase_usd"
        src = (f"hw_profiles/{hw.name}.yaml {how} ${hw.purchase_usd:,.0f} over "
               f"{spec.lifetime_years:g} y + energy at {100 * spec.utilisation:.0f}% busy")  # fmt: skip
        out.append(Price("on-prem", "owned", float(b["total_usd_per_device_hour"]), "", src))
    return out


def deployment_options(cand: Mapping[str, Any], day: DayStats, profile: DayProfile,
                       policy: AutoscalePolicy, pools: list[tuple[Any, int, int]],
                       lat_key: str, day_auto: DayStats | None = None) -> tuple[list[dict], str | None]:  # fmt: skip
    """Options of one simulated deployment (a candidate row that met the SLO at the peak).
    ``pools``: (hardware spec, replicas, devices per replica) of each pool; a heterogeneous
    deployment is priced by a provider (or list, or on-prem) only where every pool's device is.
    ``day_auto``: the day of the autoscaled fleet (latency, attainment, busy time, energy of the
    autoscaling rows); without it they take the full fleet's."""
    devices = sum(n * d for _, n, d in pools)
    billed_dedicated = devices * 86400.0
    busy = min(day.busy_device_s / billed_dedicated, 1.0) if billed_dedicated else 0.0
    per_hw = [{(p.provider, p.billing): p for p in hardware_prices(hw, busy)} for hw, _, _ in pools]
    common = [k for k in per_hw[0] if all(k in m for m in per_hw[1:])]
    if not common:
        names = " and ".join(sorted({hw.name for hw, _, _ in pools}))
        return [], (f"{names}: no common price (no catalog provider, list or purchase price "
                    "for every pool's device): its simulated deployments cannot be costed")  # fmt: skip
    ups = [autoscaled_replicas(profile, n, policy) for _, n, _ in pools]
    auto_s = [autoscaled_replica_s(up, policy) for up in ups]
    rows = []
    for key in common:
        ps = [m[key] for m in per_hw]
        if key[1] == "autoscaling":
            if all(s >= n * 86400.0 for s, (_, n, _) in zip(auto_s, pools)):
                continue  # every replica up every hour: the on-demand bill
            billed = [d * s for s, (_, _, d) in zip(auto_s, pools)]
        else:
            billed = [n * d * 86400.0 for _, n, d in pools]
        day_usd = sum(p.usd_per_device_hour * b / 3600.0 for p, b in zip(ps, billed))
        total = sum(billed)
        d = day_auto if key[1] == "autoscaling" and day_auto is not None else day
        idle = max(0.0, 1.0 - d.busy_device_s / total) if total else 0.0
        blended = Price(key[0], key[1], day_usd * 3600.0 / total if total else 0.0,
                        "; ".join(dict.fromkeys(p.date for p in ps if p.date)),
                        " | ".join(dict.fromkeys(p.source for p in ps)))  # fmt: skip
        up = [sum(u[h] for u in ups) for h in range(24)]
        row = _row(cand, d, blended, day_usd, idle, lat_key, policy, up)
        split = {f"{role(i, len(pools))} {n * dv} x {hw.name}": p.usd_per_device_hour * b / 3600.0 * DAYS_PER_MONTH
                 for i, ((hw, n, dv), p, b) in enumerate(zip(pools, ps, billed))}  # fmt: skip
        row["cost_split_usd_month"] = {**split, "of which idle": row["monthly_usd"] * idle}
        rows.append(row)
    return rows, None


def role(i: int, n: int) -> str:
    return "fleet" if n == 1 else ("prefill", "decode")[i] if n == 2 else f"pool {i}"


def _row(cand, day: DayStats, p: Price, day_usd, idle, lat_key, policy, up) -> dict[str, Any]:
    shape = cand.get("deployment") or cand["id"]
    monthly = day_usd * DAYS_PER_MONTH
    lat = day.latency.get(lat_key)
    if p.billing == "autoscaling":
        how = f"{min(up)}-{max(up)} replicas up by hour ({policy.describe()})"
    elif p.billing == "owned":
        how = "owned, every hour of the day"
    else:
        how = f"{cand['devices']} devices billed every hour"
    reason = (f"{shape} on {p.provider} {p.billing} at ${p.usd_per_device_hour:.3g}/device-h: "
              f"{how}; busy {100 * (1 - idle):.0f}% of billed device time; "
              f"meets the SLO at the peak hour with {100 * cand['headroom']:.0f}% headroom")  # fmt: skip
    return {
        "provider": p.provider, "hardware": cand["hardware"], "billing": p.billing,
        "deployment": shape, "devices": int(cand["devices"]), "candidate": cand["id"],
        "monthly_usd": monthly, "usd_per_mtok": day_usd / (day.tokens / 1e6),
        "meets_slo": bool(cand["meets_slo"]), "slo_attainment": day.attainment,
        "headroom": cand["headroom"], "idle_fraction": idle, "latency_ms": lat,
        **{k: v for k, v in day.latency.items()},
        "energy_kwh_month": day.energy_kwh * DAYS_PER_MONTH,
        "usd_per_device_hour": p.usd_per_device_hour, "price_date": p.date,
        "price_source": p.source, "reason": reason,
    }  # fmt: skip


def has_api(model: str) -> bool:
    from servesim.specs.cost import load_api_prices

    return any(api.serves == model for api in load_api_prices().values())


def api_options(model: str, day_tokens_in: float, day_tokens_out: float) -> list[dict[str, Any]]:
    """Per-token APIs serving ``model``: the day's tokens x the prices, exactly."""
    from servesim.specs.cost import load_api_prices

    rows = []
    for name, api in sorted(load_api_prices().items()):
        if api.serves != model:
            continue
        day_usd = (day_tokens_in * api.input_usd_per_mtok + day_tokens_out * api.output_usd_per_mtok) / 1e6  # fmt: skip
        tokens = day_tokens_in + day_tokens_out
        vendor = api.vendor.split(" (")[0]
        rows.append({
            "provider": vendor.lower().split()[0], "hardware": "(provider's)", "billing": "per-token",
            "deployment": api.vendor, "devices": None, "candidate": f"api:{name}",
            "monthly_usd": day_usd * DAYS_PER_MONTH, "usd_per_mtok": day_usd / (tokens / 1e6),
            "meets_slo": None, "slo_attainment": None, "headroom": None, "idle_fraction": 0.0,
            "latency_ms": None, "energy_kwh_month": None, "usd_per_device_hour": None,
            "price_date": api.date, "price_source": api.source,
            "reason": (f"{vendor} API at ${api.input_usd_per_mtok:g} in / "
                       f"${api.output_usd_per_mtok:g} out per Mtok x the day's tokens; "
                       "latency is the provider's, not simulated"),
        })  # fmt: skip
    return rows


def rank(options: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, int | None]]:
    """Options ranked (not known to miss the SLO first, then $/month, then headroom), and the
    indices of the cheapest, fastest and best-balanced options."""

    def key(o):
        missed = o["meets_slo"] is False
        return (missed, round(o["monthly_usd"], 2), -(o["headroom"] or 0.0), o["candidate"],
                o["provider"], o["billing"])  # fmt: skip

    ranked = sorted(options, key=key)
    for i, o in enumerate(ranked, 1):
        o["rank"] = i
    ok = [i for i, o in enumerate(ranked) if o["meets_slo"] is not False]
    sim = [i for i in ok if ranked[i]["meets_slo"] and _finite(ranked[i]["latency_ms"])]
    calls: dict[str, int | None] = {"cheapest": ok[0] if ok else None, "fastest": None,
                                    "best_balanced": None}  # fmt: skip
    if sim:
        calls["fastest"] = min(sim, key=lambda i: (ranked[i]["latency_ms"], i))
        c0 = min(ranked[i]["monthly_usd"] for i in sim)
        l0 = min(ranked[i]["latency_ms"] for i in sim)
        score = lambda i: ranked[i]["monthly_usd"] / c0 * ranked[i]["latency_ms"] / l0  # noqa: E731
        calls["best_balanced"] = min(sim, key=lambda i: (score(i), i))
    for name, i in calls.items():
        if i is not None:
            ranked[i].setdefault("callouts", []).append(name)
    return ranked, calls


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)
