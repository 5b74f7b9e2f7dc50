"""`servesim plan`: the cheapest deployments that meet an SLO for a workload; ranked, with reasons."""

from __future__ import annotations

import click

from servesim.cli._render import format_option
from servesim.specs import SpecError

_SLO_FLAGS = (("ttft", "p90"), ("ttft", "p99"), ("tpot", "p90"), ("tpot", "p99"), ("e2el", "p99"))


def _slo(flags: dict, general: tuple[str, ...]) -> dict:
    slo: dict = {}
    for metric, pct in _SLO_FLAGS:
        v = flags.get(f"slo_{metric}_{pct}")
        if v is not None:
            slo.setdefault(f"{metric}_ms", {})[pct] = v
    for item in general:  # KEY=VAL, KEY like ttft.p95 or ttft_ms.p95
        key, sep, val = item.partition("=")
        metric, _, pct = key.partition(".")
        metric = metric if metric.endswith("_ms") else f"{metric}_ms"
        try:
            slo.setdefault(metric, {})[pct] = float(val)
        except ValueError:
            raise SpecError(
                "plan", "--slo", item, "KEY=MS with KEY like ttft.p90 or tpot.p99"
            ) from None
        if not sep or not pct:
            raise SpecError("plan", "--slo", item, "KEY=MS with KEY like ttft.p90 or tpot.p99")
    return slo


def _csv(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def _ints(text: str | None, flag: str) -> list[int] | None:
    items = _csv(text)
    if items and not all(t.isdigit() and int(t) >= 1 for t in items):
        raise SpecError("plan", flag, text, "comma-separated whole numbers >= 1, e.g. 1,2,4")
    return [int(t) for t in items] if items else None


def _floats(text: str | None) -> list[float] | None:
    items = _csv(text)
    if not items:
        return None
    try:
        return [float(t) for t in items]
    except ValueError:
        raise SpecError("plan", "--hourly", text, "24 comma-separated numbers") from None


def _explicit() -> set[str]:
    """Parameters the user typed on the command line (a named workload fills in the others)."""
    ctx = click.get_current_context()
    return {
        name
        for name in ctx.params
        if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE
    }


def _spec_options(items: tuple[str, ...]) -> list | None:
    """--spec METHOD:K:RATE -> the planner's speculative options (no speculation tried too)."""
    if not items:
        return None
    out: list = [None]
    for item in items:
        parts = item.split(":")
        try:
            method, k, rate = parts[0], int(parts[1]), float(parts[2])
        except (IndexError, ValueError):
            raise SpecError(
                "--spec", "", item, "must be METHOD:K:RATE, e.g. eagle3:3:0.7"
            ) from None
        out.append({"method": method, "num_speculative_tokens": k, "acceptance": {"rate": rate}})
    return out


def register(group: click.Group) -> None:
    group.add_command(plan_command)


@click.command("plan")
@click.option("--model", default=None, help="Model id or HF config.json (or from --workload).")
@click.option("--tokens-per-day", type=float, default=None, help="Input + output tokens per day.")
@click.option(
    "--pattern",
    type=click.Choice(["steady", "flat", "diurnal", "business-hours", "bursty", "hourly"]),
    default="steady",
    show_default=True,
    help="Traffic over the day (docs/planning.md); hourly: --hourly.",
)
@click.option("--hourly", default=None, help="24 comma-separated relative hourly rates.")
@click.option(
    "--trace", type=click.Path(dir_okay=False), default=None, help="Plan for a trace instead."
)
@click.option("--speedup", type=float, default=None, help="Trace speed-up (rate multiplier).")
@click.option("--rate", type=float, default=None, help="Mean request rate (req/s).")
@click.option("--isl", type=click.IntRange(min=1), default=1024, show_default=True)
@click.option("--osl", type=click.IntRange(min=1), default=256, show_default=True)
@click.option(
    "--lengths",
    type=click.Choice(["azure-conv", "azure-code"]),
    default=None,
    help="A named length distribution instead of fixed ISL/OSL.",
)
@click.option("--slo-ttft-p90", type=float, default=None, metavar="MS")
@click.option("--slo-ttft-p99", type=float, default=None, metavar="MS")
@click.option("--slo-tpot-p90", type=float, default=None, metavar="MS")
@click.option("--slo-tpot-p99", type=float, default=None, metavar="MS")
@click.option("--slo-e2el-p99", type=float, default=None, metavar="MS")
@click.option(
    "--slo", "slo_general", multiple=True, metavar="KEY=MS", help="e.g. ttft.p95=800 (repeatable)."
)
@click.option("--hw", default="h100-sxm", show_default=True, help="Comma-separated hardware ids.")
@click.option("--dtype", default="bf16", show_default=True)
@click.option(
    "--pricing", default="cloud", show_default=True, help="cloud, tco, ... (see servesim cost)."
)
@click.option("--modes", default="colocated", show_default=True, help="colocated,pd,af")
@click.option("--tp", "tp_list", default=None, help="Comma-separated TP degrees (default 1,2,4,8).")
@click.option("--caps", default=None, help="Comma-separated max_num_seqs caps (default 64,256).")
@click.option(
    "--pp",
    "pp_list",
    default=None,
    help="Comma-separated PP degrees (default: 1, or the fewest stages that fit).",
)
@click.option(
    "--providers", default=None, help="Only these providers in the options (comma-separated)."
)
@click.option(
    "--billing",
    default=None,
    help="Only these billing models (on-demand,reserved-1y,reserved-3y,spot,autoscaling,owned,per-token).",
)
@click.option(
    "--min-replicas",
    type=click.IntRange(min=0),
    default=None,
    help="Autoscaling floor (default 0).",
)
@click.option(
    "--scale-up-s",
    type=float,
    default=None,
    help="Autoscaling: seconds billed before a scale-up (default 300).",
)
@click.option(
    "--scale-down-s",
    type=float,
    default=None,
    help="Autoscaling: seconds billed after a scale-down (default 300).",
)
@click.option(
    "--day-requests",
    type=click.IntRange(min=10),
    default=None,
    help="Requests per simulated rate level of the day (default 300).",
)
@click.option(
    "--budget-usd-month",
    type=float,
    default=None,
    help="Most throughput under the SLO for this monthly budget.",
)
@click.option(
    "--devices",
    "max_devices",
    type=click.IntRange(min=1),
    default=None,
    help="Most throughput under the SLO on this many devices.",
)
@click.option(
    "--workload",
    "workload_name",
    default=None,
    help="A workload by name from --workloads (or workloads.yaml).",
)
@click.option(
    "--workloads",
    "workloads_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="YAML file of named workloads.",
)
@click.option(
    "--target",
    "target_name",
    default=None,
    help="A hardware target by name from --targets (or targets.yaml).",
)
@click.option(
    "--targets",
    "targets_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="YAML file of named hardware targets.",
)
@click.option("--top", type=click.IntRange(min=1), default=5, show_default=True)
@click.option(
    "--num-requests",
    type=click.IntRange(min=10),
    default=None,
    help="Requests per confirming simulation (default: a minute of traffic, 300 to 2000).",
)
@click.option("--max-sims", type=click.IntRange(min=1), default=40, show_default=True)
@click.option("--engine", default=None, help="Engine profile: vllm|sglang|trtllm[@version].")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--spec",
    "spec_options",
    multiple=True,
    metavar="METHOD:K:RATE",
    help="Also try speculative decoding (e.g. eagle3:3:0.7); repeatable.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Write plan.json, options.csv, candidates.csv, Pareto CSVs and PNGs, best_config.yaml, launch_commands.sh here.",
)
@format_option("table", "json")
def plan_command(
    model,
    tokens_per_day,
    pattern,
    trace,
    speedup,
    rate,
    isl,
    osl,
    lengths,
    slo_general,
    hw,
    dtype,
    pricing,
    modes,
    tp_list,
    caps,
    top,
    num_requests,
    max_sims,
    engine,
    seed,
    spec_options,
    out,
    fmt,
    hourly,
    pp_list,
    providers,
    billing,
    min_replicas,
    scale_up_s,
    scale_down_s,
    day_requests,
    budget_usd_month,
    max_devices,
    workload_name,
    workloads_file,
    target_name,
    targets_file,
    **slo_flags,
) -> None:
    """Find the cheapest deployments of MODEL that meet the SLO, priced over a simulated day
    across providers and billing models (including per-token APIs)."""
    import json

    import servesim
    from servesim.studies import apply_named, format_plan

    auto = {k: v for k, v in (("min_replicas", min_replicas), ("scale_up_s", scale_up_s),
                              ("scale_down_s", scale_down_s)) if v is not None}  # fmt: skip
    kwargs = dict(
        tokens_per_day=tokens_per_day, pattern=pattern, trace=trace, speedup=speedup, rate=rate,
        isl=isl, osl=osl, lengths={"preset": lengths} if lengths else None,
        slo=_slo(slo_flags, slo_general), hardware=_csv(hw), dtype=dtype, pricing=pricing,
        modes=_csv(modes), tp=_ints(tp_list, "--tp"), pp=_ints(pp_list, "--pp"),
        caps=_ints(caps, "--caps"), top=top, num_requests=num_requests,
        max_sims=max_sims, seed=seed, out=out, engine=engine, hourly=_floats(hourly),
        providers=_csv(providers), billing=_csv(billing), autoscale=auto or None,
        day_requests=day_requests, speculative=_spec_options(spec_options),
    )  # fmt: skip
    model, kwargs, derived = apply_named(model, kwargs, workload_name, workloads_file,
                                         target_name, targets_file, explicit=_explicit())  # fmt: skip
    for line in derived:  # a user accelerator's derived fields, with their rules
        click.echo(f"derived: {line}", err=True)
    if budget_usd_month is not None or max_devices is not None:
        from servesim.studies import best_under_budget, format_budget

        res = best_under_budget(model, budget_usd_month=budget_usd_month, devices=max_devices,
                                **kwargs)  # fmt: skip
        click.echo(json.dumps(res, indent=2, default=str) if fmt == "json" else format_budget(res))
        return
    result = servesim.plan(model, **kwargs)
    if fmt == "json":
        click.echo(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        click.echo(format_plan(result))
        if out:
            click.echo(f"wrote {out}/plan.json, options.csv, candidates.csv, pareto_*.csv/png, "
                       "launch_commands.sh")  # fmt: skip
