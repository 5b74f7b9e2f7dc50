"""The planner's text and tables: the ranked table `servesim plan` prints, Pareto fronts, and the
day's columns added to the top candidates."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from servesim.studies.pareto import pareto  # noqa: F401  (re-exported for plan)
from servesim.studies.planning.day import HOURS_PER_MONTH
from servesim.studies.planning.ranking import format_options


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%" if math.isfinite(x) else "-"


def day_columns(top: pd.DataFrame, priced: Mapping[str, Any]) -> pd.DataFrame:
    """The top rows' $/Mtok and idle figures from the simulated day (not the peak)."""
    if top.empty:
        return top
    top = top.copy()
    per_month = priced["tokens_per_month"] / 1e6
    days = priced["days"]
    top["usd_per_mtok"] = top["monthly_usd"] / per_month
    top["busy_fraction_day"] = [days.get(i, {}).get("busy_fraction") for i in top["id"]]
    top["slo_attainment_day"] = [days.get(i, {}).get("slo_attainment") for i in top["id"]]
    top["idle_waste_usd"] = [
        m * (1.0 - b) if b is not None else w
        for m, b, w in zip(top["monthly_usd"], top["busy_fraction_day"], top["idle_waste_usd"])
    ]
    return top


def day_info(traffic: Mapping[str, Any], priced: Mapping[str, Any]) -> dict[str, Any]:
    from servesim.studies.planning.daysim import profile_summary

    return {
        **profile_summary(traffic["profile"], traffic["levels"], traffic["avg_rps"]),
        "autoscaling_policy": traffic["policy"].describe(),
        "tokens_per_day": priced["tokens_per_day"],
        "tokens_per_month": priced["tokens_per_month"],
        "hours_per_month": HOURS_PER_MONTH,
        "deployments": priced["days"],
    }


def format_plan(result: Any) -> str:
    """The ranked table printed by `servesim plan`."""
    i = result.inputs
    lines = [
        f"plan for {i['model']}: {i['design_rps']:.3g} req/s design rate "
        f"(mean {i['avg_rps']:.3g}), ISL {i['mean_isl']:.0f} / OSL {i['mean_osl']:.0f}; "
        f"{len(result.candidates)} candidates simulated"
    ]
    if result.top.empty:
        closest = [n for n in result.notes if n.startswith("nothing meets the SLO")]
        lines.append(closest[0] if closest else "no simulated deployment to rank")
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
    if result.options:
        lines += format_options(result.options, result.callouts)
    if result.notes:
        lines.append("notes:")
        lines += [f"  - {n}" for n in result.notes[:20]]
        if len(result.notes) > 20:
            lines.append(f"  ... {len(result.notes) - 20} more (plan.json)")
    return "\n".join(lines)
