"""`servesim sweep SWEEP.yaml`: a parameter grid, in parallel, resumable; one result row per point."""

from __future__ import annotations

import sys

import click


def register(group: click.Group) -> None:
    group.add_command(sweep_command)


@click.command("sweep")
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Local worker processes (default: all cores).",
)
@click.option(
    "--dask",
    "dask_address",
    default=None,
    metavar="ADDRESS",
    help="Run the points on a Dask distributed scheduler (e.g. tcp://host:8786).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Result directory (default: the spec's `out`, else NAME_results/ beside the spec, NAME being its `name` or its file name).",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def sweep_command(
    spec: str, jobs: int | None, dask_address: str | None, out: str | None, quiet: bool
) -> None:
    """Run every point of SPEC not yet done; write results.parquet and results.csv."""
    import servesim
    from servesim.studies import load_sweep_spec

    parsed = load_sweep_spec(spec)
    out_dir = out or parsed.out
    progress = not quiet and sys.stderr.isatty()  # a '\r' bar only where a terminal shows it
    table = servesim.sweep(spec, jobs=jobs, dask=dask_address, out=out_dir, progress=progress)
    errors = int(table["error"].notna().sum()) if "error" in table else 0
    click.echo(
        f"{len(table)} points -> {out_dir}/results.parquet, results.csv"
        + (f" ({errors} with errors; see the `error` column)" if errors else "")
    )
