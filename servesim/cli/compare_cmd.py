"""`servesim compare A B`: two result sets side by side per matching config, ratios B/A."""

from __future__ import annotations

import click

from servesim.cli._render import format_option


def register(group: click.Group) -> None:
    group.add_command(compare_command)


@click.command("compare")
@click.argument("a", type=click.Path(exists=True))
@click.argument("b", type=click.Path(exists=True))
@format_option("table", "markdown", "csv")
@click.option(
    "--metrics", default=None, help="Comma-separated metrics (default: the standard ones present)."
)
@click.option(
    "--measured",
    type=click.Choice(["a", "b", "none"]),
    default=None,
    help="Which side is measured (default: detected).",
)
@click.option(
    "--by",
    default=None,
    metavar="KEYS",
    help="Comma-separated config keys to match rows on (default: model, isl, osl, rate, conc, "
    "tp as far as both sides have them); 'none' compares two single results directly.",
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), default=None, help="Also write to this file."
)
def compare_command(
    a: str,
    b: str,
    fmt: str,
    metrics: str | None,
    measured: str | None,
    by: str | None,
    output: str | None,
) -> None:
    """Compare result sets A and B (bench JSON dirs, sweeps, run dirs, measured CSVs).

    Benchmark files (servesim's or the real `vllm bench serve`'s) match by their content.
    """
    import servesim
    from servesim._files import check_out_path, write_atomic
    from servesim.studies import format_comparison

    if output:
        check_out_path(output, "compare", is_dir=False)
    names = [m.strip() for m in metrics.split(",") if m.strip()] if metrics else None
    frame = servesim.compare(a, b, names, measured=measured, by=by)
    text = format_comparison(frame, fmt)
    click.echo(text)
    if output:
        write_atomic(output, text if text.endswith("\n") else text + "\n")
