"""`servesim capacity CONFIG`: the largest request rate or concurrency that meets the SLO."""

from __future__ import annotations

import click

from servesim.cli._render import format_option


def register(group: click.Group) -> None:
    group.add_command(capacity_command)


@click.command("capacity")
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--by", type=click.Choice(["rate", "concurrency"]), default="rate", show_default=True)
@click.option("--start", type=float, default=None, help="First load tried (default: the config's).")
@click.option(
    "--rel-tol",
    type=float,
    default=0.05,
    show_default=True,
    help="Stop when the bracket is this narrow.",
)
@click.option("--max-sims", type=click.IntRange(min=1), default=14, show_default=True)
@click.option(
    "--num-requests",
    type=click.IntRange(min=10),
    default=None,
    help="Requests per probe (default: the config's).",
)
@format_option("table", "json")
def capacity_command(config, by, start, rel_tol, max_sims, num_requests, fmt) -> None:
    """Bisect the load of CONFIG (its deployment and SLO) to the largest that meets the SLO."""
    import json

    from servesim.studies import capacity, format_capacity

    res = capacity(config, by=by, start=start, rel_tol=rel_tol, max_sims=max_sims,
                   num_requests=num_requests)  # fmt: skip
    click.echo(json.dumps(res, indent=2, default=str) if fmt == "json" else format_capacity(res))
