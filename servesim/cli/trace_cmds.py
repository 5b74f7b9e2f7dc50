"""`servesim trace fetch NAME` and `servesim trace stats FILE`."""

from __future__ import annotations

import json
import math

import click

import servesim

_FORMATS = ("azure", "mooncake", "burstgpt", "csv", "jsonl")


def register(group: click.Group) -> None:
    group.add_command(trace)


@click.group()
def trace() -> None:
    """Public request traces: download and describe."""


@trace.command("fetch")
@click.argument("name")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where to keep downloads (default $SERVESIM_CACHE/traces or ~/.cache/servesim/traces).",
)
def fetch(name: str, cache_dir: str | None) -> None:
    """Download public trace NAME once into the cache and print its path (`servesim list traces`)."""
    click.echo(str(servesim.fetch_trace(name, cache_dir)))


@trace.command("stats")
@click.argument("file", type=click.Path())
@click.option(
    "--format",
    "fmt",
    type=click.Choice(_FORMATS),
    default=None,
    help="Trace format (default: inferred from the extension and header).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as JSON.")
def stats(file: str, fmt: str | None, as_json: bool) -> None:
    """Rate, burstiness (CV of inter-arrival times) and length percentiles of a trace FILE."""
    s = servesim.trace_stats(file, fmt)
    if as_json:
        click.echo(json.dumps(s, indent=2, default=_plain))
        return
    for note in s["notes"]:
        click.echo(f"note: {note}", err=True)
    click.echo(f"{s['path']} ({s['format']})")
    click.echo(f"  requests      {s['requests']:,}")
    click.echo(f"  duration      {s['duration_s']:,.1f} s")
    click.echo(
        f"  rate          {_num(s['rate_rps'])} req/s   CV of inter-arrivals {_num(s['interarrival_cv'])}"
    )
    click.echo(
        f"  tokens/s      {_num(s['tokens_per_s'])} (input {_num(s['input_tokens_per_s'])}, output {_num(s['output_tokens_per_s'])})"
    )
    click.echo("  lengths          mean      p50      p90      p99      max")
    for side in ("input", "output"):
        cells = "".join(
            f"{_num(s[f'{side}_{k}']):>9}" for k in ("mean", "p50", "p90", "p99", "max")
        )
        click.echo(f"  {side:<10}{cells}")
    if s["with_prefix_hashes"]:
        click.echo(f"  prefix hashes on {s['with_prefix_hashes']:,} requests")


def _num(x: float) -> str:
    if isinstance(x, float) and math.isnan(x):
        return "n/a"
    return f"{x:,.2f}" if isinstance(x, float) and abs(x) < 100 else f"{x:,.0f}"


def _plain(x):
    return x.item() if hasattr(x, "item") else str(x)
