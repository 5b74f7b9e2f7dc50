"""A fixed budget ($/month or a device count): the deployment that sustains the most traffic
under the SLO.

For every layout that fits and is not pruned by its latency floors, the budget buys
n = floor(budget / replica $/month) (or floor(devices / devices per replica)) replicas; the
largest rate one replica sustains under the SLO is found by bisection with simulation
(planning.capacity), and the fleet's is n times that (the router spreads load evenly over
replicas: the estimate is linear in n). The three layouts with the best analytic estimate are
simulated; the rest are listed with their estimate.
"""

from __future__ import annotations

import math
from typing import Any

from servesim.specs.common import SpecError

_SIMULATED_LAYOUTS = 3


def best_under_budget(model: str, *, budget_usd_month: float | None = None,
                      devices: int | None = None, **kwargs: Any) -> dict[str, Any]:  # fmt: skip
    from servesim.studies.plan import HOURS_PER_MONTH, PLAN_DEFAULTS
    from servesim.studies.planning.candidates import _config, _families, _prune
    from servesim.studies.planning.capacity import capacity
    from servesim.studies.planning.slo import slo_targets
    from servesim.studies.planning.traffic import _traffic

    if (budget_usd_month is None) == (devices is None):
        raise SpecError("plan", "--budget-usd-month/--devices", None, "give exactly one")
    if budget_usd_month is not None and not (
        budget_usd_month > 0 and math.isfinite(budget_usd_month)
    ):
        raise SpecError("plan", "--budget-usd-month", budget_usd_month, "a positive number")
    kwargs.pop("out", None)
    a = {**PLAN_DEFAULTS, **{k: v for k, v in kwargs.items() if v is not None}, "model": model}
    a["modes"] = ["colocated"]
    targets = slo_targets(a["slo"])
    traffic = _traffic(
        {**a, "rate": a.get("rate") or 1.0}
        if not a.get("tokens_per_day") and not a.get("trace")
        else a
    )
    notes: list[str] = []
    rows = []
    for f in _families(a, traffic, notes):
        why = _prune(f, targets)
        if why:
            notes.append(f"{f.hardware} tp{f.tp} pp{f.pp} cap{f.cap}: {why}")
            continue
        per = f.tp * f.pp
        month = per * f.price_hour * HOURS_PER_MONTH
        n = int(budget_usd_month // month) if budget_usd_month else int(devices // per)
        if n < 1:
            notes.append(f"{f.hardware} TP{f.tp} PP{f.pp}: one replica needs {per} devices, "
                         f"${month:,.0f}/month: over the budget")  # fmt: skip
            continue
        rows.append({"hardware": f.hardware, "tp": f.tp, "pp": f.pp, "max_num_seqs": f.cap,
                     "replicas": n, "devices": n * per, "monthly_usd": n * month,
                     "estimated_rps": n * f.capacity_rps, "family": f})  # fmt: skip
    if not rows:
        what = f"${budget_usd_month:,.0f}/month" if budget_usd_month else f"{devices} devices"
        first = notes[0] if notes else "no layout fits"
        raise SpecError(
            "plan", "budget", what, f"buys no replica that can meet the SLO; first: {first}"
        )
    rows.sort(key=lambda r: -r["estimated_rps"])
    for r in rows[:_SIMULATED_LAYOUTS]:
        f = r.pop("family")
        cfg = _config(a, f, {"instances": 1}, traffic)
        cap = capacity(cfg, by="rate", slo=a["slo"], start=max(f.capacity_rps / 2, 1e-3),
                       rel_tol=0.1, max_sims=8, num_requests=a.get("num_requests"))  # fmt: skip
        per_replica = cap["max_value"] or 0.0
        r.update(simulated=True, replica_rps=per_replica, sustained_rps=r["replicas"] * per_replica,
                 tokens_per_s=r["replicas"] * per_replica * (traffic["isl"] + traffic["osl"]))  # fmt: skip
    for r in rows[_SIMULATED_LAYOUTS:]:
        r.pop("family")
        r.update(simulated=False, replica_rps=None, sustained_rps=None, tokens_per_s=None)
    rows.sort(key=lambda r: (-(r["sustained_rps"] or -1), -r["estimated_rps"]))
    return {"model": model, "budget_usd_month": budget_usd_month, "devices": devices,
            "slo": a["slo"], "rows": rows, "notes": notes}  # fmt: skip


def format_budget(res: dict[str, Any]) -> str:
    what = (
        f"${res['budget_usd_month']:,.0f}/month"
        if res["budget_usd_month"]
        else f"{res['devices']} devices"
    )
    lines = [f"most traffic under the SLO for {res['model']} with {what}:"]
    for i, r in enumerate(res["rows"][:10], 1):
        got = (f"sustains {r['sustained_rps']:.3g} req/s ({r['tokens_per_s']:,.0f} tok/s, simulated)"
               if r["simulated"] else f"estimate {r['estimated_rps']:.3g} req/s (not simulated)")  # fmt: skip
        lines.append(f"{i}. {r['replicas']} x {r['hardware']} TP{r['tp']} PP{r['pp']} "
                     f"(max_num_seqs {r['max_num_seqs']}), {r['devices']} devices, "
                     f"${r['monthly_usd']:,.0f}/month: {got}")  # fmt: skip
    return "\n".join(lines)
