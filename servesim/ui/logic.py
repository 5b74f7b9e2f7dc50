"""What the web page does, as plain functions (tested without a browser)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

PATTERNS = ("flat", "diurnal", "business-hours", "bursty", "hourly")
OPTION_COLUMNS = ("rank", "provider", "hardware", "billing", "deployment", "monthly_usd",
                  "usd_per_mtok", "meets_slo", "slo_attainment", "headroom", "idle_fraction",
                  "latency_ms", "price_date", "reason")  # fmt: skip


def choices() -> tuple[list[str], list[str]]:
    """(model ids, hardware ids) of the catalog."""
    from servesim.catalog import hardware_ids, model_ids

    return model_ids(), hardware_ids()


def plan_kwargs(form: Mapping[str, Any]) -> dict[str, Any]:
    """servesim.plan arguments from the form's values (the names of the page's widgets)."""
    slo: dict[str, Any] = {}
    if form.get("ttft_p90_ms"):
        slo.setdefault("ttft_ms", {})["p90"] = float(form["ttft_p90_ms"])
    if form.get("tpot_p99_ms"):
        slo.setdefault("tpot_ms", {})["p99"] = float(form["tpot_p99_ms"])
    hourly = None
    if form.get("pattern") == "hourly":
        hourly = [
            float(x)
            for x in str(form.get("hourly") or "").replace(";", ",").split(",")
            if x.strip()
        ]
    kw: dict[str, Any] = {
        "hardware": list(form.get("hardware") or []),
        "isl": int(form.get("isl") or 1024),
        "osl": int(form.get("osl") or 256),
        "pattern": form.get("pattern") or "flat",
        "hourly": hourly,
        "slo": slo,
        "caps": [int(form.get("max_num_seqs") or 64)],
        "max_sims": int(form.get("max_sims") or 12),
        "top": int(form.get("top") or 3),
        "day_requests": int(form.get("day_requests") or 200),
        "num_requests": int(form["num_requests"]) if form.get("num_requests") else None,
        "dtype": form.get("dtype") or "bf16",
    }
    if form.get("trace_path"):
        kw["trace"] = form["trace_path"]
    else:
        kw["tokens_per_day"] = float(form.get("tokens_per_day") or 0) or None
    if form.get("billing"):
        kw["billing"] = list(form["billing"])
    return kw


def run_plan(form: Mapping[str, Any]) -> Any:
    import servesim

    return servesim.plan(str(form["model"]), **plan_kwargs(form))


def options_table(result: Any) -> pd.DataFrame:
    df = pd.DataFrame(result.options)
    if df.empty:
        return pd.DataFrame(columns=list(OPTION_COLUMNS))
    return df[[c for c in OPTION_COLUMNS if c in df.columns]]


def top_row_text(result: Any) -> str:
    """One line naming the first-ranked option (what the page shows above the table)."""
    if not result.options:
        return "Top option: none (nothing priced; see the notes)"
    o = result.options[0]
    return (f"Top option: {o['provider']} {o['billing']}, {o['deployment']}: "
            f"${o['monthly_usd']:,.0f}/month, ${o['usd_per_mtok']:.3g}/Mtok")  # fmt: skip


def callout_lines(result: Any) -> list[str]:
    out = []
    for name, i in result.callouts.items():
        if i is None:
            out.append(f"{name.replace('_', ' ')}: none")
            continue
        o = result.options[i]
        out.append(f"{name.replace('_', ' ')}: #{o['rank']} {o['provider']} {o['billing']} "
                   f"({o['deployment']}), ${o['monthly_usd']:,.0f}/month")  # fmt: skip
    return out


def pareto_frame(result: Any) -> pd.DataFrame:
    """Simulated options: $/month against the day's latency (the page's chart)."""
    df = options_table(result)
    if df.empty:
        return df
    df = df[df["latency_ms"].notna()]
    return df[["monthly_usd", "latency_ms", "provider", "billing"]].reset_index(drop=True)


def option_details(result: Any, rank: int) -> dict[str, Any]:
    """Latency percentiles, cost split and energy of one option (by rank)."""
    o = next(o for o in result.options if o["rank"] == rank)
    day = result.day.get("deployments", {}).get(o["candidate"], {})
    return {
        "option": {
            k: o.get(k)
            for k in (
                "provider",
                "billing",
                "deployment",
                "monthly_usd",
                "usd_per_mtok",
                "usd_per_device_hour",
                "price_date",
                "price_source",
            )
        },  # fmt: skip
        "latency_ms": day.get("latency", {}),
        "busy_fraction": day.get("busy_fraction"),
        "cost_split_usd_month": o.get("cost_split_usd_month"),
        "energy_kwh_month": o.get("energy_kwh_month"),
        "levels": day.get("levels", []),
    }


def plan_json(result: Any) -> str:
    return json.dumps(result.to_dict(), indent=2, default=_default) + "\n"


def _default(o: Any) -> Any:
    return o.item() if hasattr(o, "item") else str(o)


def report_markdown(result: Any) -> str:
    """The downloadable report: inputs, call-outs, ranked options, the day, launch commands."""
    i, d = result.inputs, result.day
    lines = [f"# Capacity plan: {i['model']}", "",
             f"- traffic: {d.get('pattern')} day, {d.get('tokens_per_day', 0):,.0f} tokens/day, "
             f"peak {i['design_rps']:.3g} req/s, mean {i['avg_rps']:.3g} req/s",
             f"- SLO: {json.dumps(i.get('slo'))}",
             f"- month = {d.get('hours_per_month', 730):g} h of the simulated day",
             f"- {d.get('autoscaling_policy', '')}", "", "## Call-outs", ""]  # fmt: skip
    lines += [f"- {c}" for c in callout_lines(result)]
    lines += ["", "## Options (ranked)", "", "| # | provider | billing | deployment | $/month | $/Mtok | SLO | idle |",
              "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for o in result.options:
        met = {True: "meets", False: "misses", None: "not simulated"}[o["meets_slo"]]
        idle = "-" if o["idle_fraction"] is None else f"{100 * o['idle_fraction']:.0f}%"
        lines.append(f"| {o['rank']} | {o['provider']} | {o['billing']} | {o['deployment']} | "
                     f"{o['monthly_usd']:,.0f} | {o['usd_per_mtok']:.3g} | {met} | {idle} |")  # fmt: skip
    cmds = result.to_dict().get("launch_commands") or {}
    if cmds:
        lines += ["", "## Launch commands (best simulated deployment)", ""]
        for engine, cl in cmds.items():
            lines += [f"### {engine}", "", "```sh", *cl, "```", ""]
    if result.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in result.notes[:40]]
    return "\n".join(lines) + "\n"


def launch_text(result: Any) -> str:
    from servesim.studies.planning.export import launch_text as text

    return text(result.best_config) if result.best_config else "# no deployment met the SLO\n"


def finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


APP_PATH = Path(__file__).with_name("app.py")
