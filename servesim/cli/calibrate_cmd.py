"""`servesim calibrate`: fit a hardware profile's efficiencies to measured timings; error table."""

from __future__ import annotations

import dataclasses
from pathlib import Path

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
    help="Write a whole profile here (HW's datasheet part plus the fitted sections); "
    "--hw FILE.yaml accepts it.",
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
@click.option(
    "--per-stratum",
    "per_stratum",
    type=click.IntRange(min=0),
    default=8,
    show_default=True,
    help="aiconfigurator tables: rows fitted per system x engine x format x shape class x size "
    "octave (a stratified subsample; 0 = all rows). Scores use every held-out row.",
)
@format_option("table", "json")
def calibrate(measured, hw, out, holdout, fit, max_rows, per_stratum, fmt) -> None:  # fmt: skip
    """Fit HW's efficiency parameters to measured per-operator timings and print the error per
    operator family on rows held out of the fit (MAPE, median and p90 absolute error).

    MEASURED accepts three formats (docs/accuracy.md):

    \b
    - servesim's long CSVs (linear ops, attention, collectives; one row per op and shape,
      column measured_ms_median), e.g. ../shared/data/measured/vidur_*.csv;
    - vidur's own wide profiling files (mlp.csv, attention.csv, all_reduce.csv, send_recv.csv:
      one time_stats.<op>.median column per op; device read from the path);
    - aiconfigurator's kernel tables (gemm, context/generation attention, MLA, moe,
      custom_allreduce, nccl .csv.gz, or their folder): fits the default efficiencies, one
      overlay per engine (trtllm, vllm, sglang) and the 80% prediction bands.

    --out writes a whole profile (HW's datasheet part plus the fitted sections) that --hw
    accepts directly: servesim run cfg.yaml --hw fitted.yaml."""
    groups = [g.strip() for g in fit.split(",") if g.strip()] if fit else None
    if out:
        check_out_path(out, "calibrate", is_dir=False)
    if _is_aic(measured):
        _calibrate_aic(measured, hw, out, per_stratum, fmt)
        return
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


def _is_aic(paths) -> bool:
    import pandas as pd

    for p in map(Path, paths):
        if p.is_dir():
            return True
        if p.is_file():
            try:
                if servesim.is_aic_table(pd.read_csv(p, nrows=0).columns):
                    return True
            except (ValueError, UnicodeDecodeError, OSError):
                return False
    return False


def _calibrate_aic(measured, hw, out, per_stratum, fmt) -> None:
    spec = servesim.load_hardware(hw, where="servesim calibrate --hw")
    result = servesim.calibrate_tables(list(measured), spec, per_stratum=per_stratum, out=out)
    if fmt == "json":
        click.echo(to_json(dataclasses.asdict(result)))
        return
    rows = [
        [family, fmt_num(e.get("n", 0)), fmt_pct(e.get("mape")), fmt_pct(e.get("median")),
         fmt_pct(e.get("p90")), fmt_pct(e.get("bias")),
         "-" if family not in result.intervals else
         "[{:.2f}, {:.2f}]".format(*result.intervals[family])]
        for family, e in result.errors.items() if e.get("n")
    ]  # fmt: skip
    headers = ["family", "rows", "MAPE", "median", "p90", "bias", "80% band"]
    click.echo(f"calibration of {result.hardware} on aiconfigurator tables "
               "(error on shapes held out of the fit; engines pooled)")  # fmt: skip
    click.echo(table(rows, headers, align="lrrrrrl"))
    for engine, values in result.engines.items():
        click.echo(f"engine {engine}: {len(values)} keys differ from the pooled fit")
    if out:
        click.echo(f"\nwrote the profile to {out} (use it as --hw {out})")
