"""`servesim cost`: compare pricing models (cloud providers, reserved, spot, autoscaling,
dedicated, TCO, per-token APIs) for a finished run, a config, or a bare hardware count."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import click

import servesim
from servesim.cli._render import fmt_num, format_option, table
from servesim.specs import SpecError


def register(group: click.Group) -> None:
    group.add_command(cost_command)


_COLUMNS = (
    ("pricing", "pricing"),
    ("provider", "provider"),
    ("price_column", "column"),
    ("usd_per_device_hour", "$/dev-h"),
    ("usd_per_hour", "$/h"),
    ("usd_per_mtok_input", "$/Mtok in"),
    ("usd_per_mtok_output", "$/Mtok out"),
    ("usd_per_mtok_blended", "$/Mtok"),
    ("monthly_usd", "$/month"),
    ("idle_cost_usd", "idle $"),
    ("price_date", "date"),
)


@click.command("cost")
@click.argument("target", required=False, type=click.Path(exists=True))
@click.option(
    "--hw", "hardware", default=None, help="Hardware id/alias: price always-on devices (no TARGET)."
)
@click.option(
    "--devices", type=click.IntRange(min=1), default=1, show_default=True, help="Devices for --hw."
)
@click.option("--tokens-per-day", type=click.FloatRange(min=0, min_open=True), default=None,
              help="With --hw: daily token volume, for $/Mtok.")  # fmt: skip
@click.option(
    "--providers", default=None, help="Comma-separated providers to include (default: all)."
)
@format_option("table", "json", "csv")
def cost_command(target: str | None, hardware: str | None, devices: int, tokens_per_day: float | None,
                 providers: str | None, fmt: str) -> None:  # fmt: skip
    """Compare pricing models for a run directory, a config YAML (simulated first), or --hw."""
    wanted = [p.strip() for p in providers.split(",") if p.strip()] if providers else None
    if (target is None) == (hardware is None):
        raise SpecError(
            "servesim cost",
            "TARGET",
            target or "<none>",
            "give a run directory or config YAML, or --hw NAME",
        )
    if hardware is not None:
        hw = servesim.load_hardware(hardware, where="servesim cost --hw")
        frame = servesim.compare_pricing(
            hw, providers=wanted, devices=devices, tokens_per_day=tokens_per_day
        )
    elif Path(target).is_dir():
        frame = servesim.compare_pricing(target, providers=wanted)
    elif Path(target).suffix.lower() not in (".yaml", ".yml", ".json"):
        raise SpecError(target, "", Path(target).name, "not a run directory or a config YAML/JSON")
    else:
        # a progress line only on a terminal, as `servesim run` does
        result = servesim.simulate(target, progress=sys.stderr.isatty())
        frame = servesim.compare_pricing(result, providers=wanted)
    _render(frame, fmt)


def _render(frame: Any, fmt: str) -> None:
    if fmt == "csv":
        click.echo(frame.to_csv(index=False), nl=False)
        return
    records = [{k: _plain(v) for k, v in r.items()} for r in frame.to_dict(orient="records")]
    if fmt == "json":
        click.echo(json.dumps(records, indent=2))
        return
    if not records:
        click.echo("(no published price for this hardware)")
        return
    rows = [
        [r[k] if isinstance(r[k], str) else fmt_num(r[k]) for k, _ in _COLUMNS] for r in records
    ]
    click.echo(table(rows, headers=[h for _, h in _COLUMNS]))
    click.echo("\nsources:")
    for src in dict.fromkeys(r["price_source"] for r in records if r["price_source"]):
        click.echo(f"  {src}")


def _plain(v: Any) -> Any:
    if hasattr(v, "item") and not isinstance(v, str):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v
