"""`servesim plan`: the cheapest deployments that meet an SLO for a workload; ranked, with reasons."""

from __future__ import annotations

import click

from servesim.cli._render import format_option
from servesim.specs.common import SpecError

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
@click.option("--model", required=True, help="Model id or HF config.json.")
@click.option("--tokens-per-day", type=float, default=None, help="Input + output tokens per day.")
@click.option(
    "--pattern",
    type=click.Choice(["steady", "business-hours", "bursty"]),
    default="steady",
    show_default=True,
)
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
@click.option("--top", type=click.IntRange(min=1), default=5, show_default=True)
@click.option(
    "--num-requests",
    type=click.IntRange(min=10),
    default=None,
    help="Requests per confirming simulation (default: a minute of traffic, 300 to 2000).",
)
@click.option("--max-sims", type=click.IntRange(min=1), default=40, show_default=True)
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
    help="Write plan.json, candidates.csv, Pareto CSVs and PNGs, best_config.yaml here.",
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
    seed,
    spec_options,
    out,
    fmt,
    **slo_flags,
) -> None:
    """Find the cheapest deployments of MODEL that meet the SLO."""
    import json

    import servesim
    from servesim.studies.plan import format_plan

    result = servesim.plan(
        model,
        tokens_per_day=tokens_per_day, pattern=pattern, trace=trace, speedup=speedup, rate=rate,
        isl=isl, osl=osl, lengths={"preset": lengths} if lengths else None,
        slo=_slo(slo_flags, slo_general), hardware=_csv(hw), dtype=dtype, pricing=pricing,
        modes=_csv(modes), tp=_ints(tp_list, "--tp"),
        caps=_ints(caps, "--caps"), top=top, num_requests=num_requests,
        max_sims=max_sims, seed=seed, out=out, speculative=_spec_options(spec_options),
    )  # fmt: skip
    if fmt == "json":
        click.echo(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        click.echo(format_plan(result))
        if out:
            click.echo(f"wrote {out}/plan.json, candidates.csv, pareto_*.csv/png")
