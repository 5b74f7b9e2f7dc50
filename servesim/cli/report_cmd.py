"""`servesim report RESULTS... -o FILE.html|FILE.md`: figures and tables from runs, sweeps, plans."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    group.add_command(report_command)


@click.command("report")
@click.argument("results", nargs=-1, required=True, type=click.Path(exists=True))
@click.option(
    "-o",
    "--out",
    required=True,
    type=click.Path(dir_okay=False),
    help="report.html (self-contained) or report.md (+ NAME_files/ with the PNGs).",
)
@click.option("--title", default=None)
def report_command(results: tuple[str, ...], out: str, title: str | None) -> None:
    """Write a report of run directories, sweeps, plans and benchmark results."""
    import servesim

    path = servesim.report(list(results), out, title=title)
    click.echo(f"wrote {path}")
