"""`servesim calibrate`: fit a hardware profile's efficiencies to measured timings; error table."""

from __future__ import annotations

import click

import servesim
from servesim._files import check_out_path
from servesim.cli._render import fmt_num, fmt_pct, format_option, table, to_json

_GROUPS = ("gemm", "elementwise", "attn_prefill", "attn_decode", "comm", "p2p")


def register(group: click.Group) -> None:
    group.add_command(calibrate)


@click.command("calibrate")
@click.argument("measured", nargs=-1, required=True, metavar="MEASURED.csv [MORE.csv ...]")
@click.option(
    "--hw",
    "hw",
    required=True,
    help="Hardware id, alias or profile YAML the rows were measured on.",
)
@click.option(
    "--out",
    "out",
    default=None,
    metavar="FILE.yaml",
    help="Write the fitted efficiency block (ready to paste into a profile) here.",
)
@click.option(
    "--holdout",
    type=click.Choice(["model", "random", "none"]),
    default="model",
    show_default=True,
    help="Rows held out of the fit: whole models, 30% of rows, or none (in-sample).",
)
@click.option(
    "--fit",
    "fit",
    default=None,
    metavar="GROUP[,GROUP...]",
    help="Fit only these groups (" + ", ".join(_GROUPS) + "); the rest are only scored.",
)
@click.option(
    "--max-rows",
    "max_rows",
    type=click.IntRange(min=1),
    default=None,
    help="At most this many rows per operator family (evenly spaced), for quick runs.",
)
@format_option("table", "json")
def calibrate(measured, hw, out, holdout, fit, max_rows, fmt) -> None:  # fmt: skip
    """Fit HW's efficiency parameters to measured per-operator timings (vidur's formats: linear
    ops, attention, collectives) and print the error before (defaults) and after, per operator
    family, on rows held out of the fit: MAPE, median and p90 absolute percentage error."""
    groups = [g.strip() for g in fit.split(",") if g.strip()] if fit else None
    if out:
        check_out_path(out, "calibrate", is_dir=False)
    result = servesim.calibrate(
        list(measured), hw, out=out, holdout=holdout, fit=groups, max_rows=max_rows
    )
    if fmt == "json":
        click.echo(to_json(result.to_dict()))
        return
    click.echo(render(result))
    if out:
        click.echo(f"\nwrote the efficiency block to {out}")


def render(result) -> str:
    """The error table, the fitted values and what was left out."""
    rows = [
        [e.family, e.device, fmt_num(e.after.n),
         fmt_pct(e.before.mape), fmt_pct(e.before.median), fmt_pct(e.before.p90),
         fmt_pct(e.after.mape), fmt_pct(e.after.median), fmt_pct(e.after.p90), e.holdout]
        for e in result.errors
    ]  # fmt: skip
    headers = ["family", "device", "rows", "MAPE before", "median", "p90",
               "MAPE after", "median", "p90", "held out"]  # fmt: skip
    lines = [
        f"calibration of {result.hardware} ("
        + ("in-sample error" if result.holdout == "none" else "error on rows held out of the fit")
        + "; before = efficiency defaults)",
        table(rows, headers, align="llrrrrrrrl"),
        "",
        "fitted: " + ", ".join(f"{k}={fmt_num(v, 4)}" for k, v in result.fitted),
    ]
    for reason, count in result.excluded:
        lines.append(f"left out: {count} rows ({reason})")
    return "\n".join(lines)
