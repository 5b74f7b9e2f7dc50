"""`servesim bench`: a virtual vLLM benchmark_serving run (or a whole matrix), same result JSON."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    group.add_command(bench_command)


@click.command("bench")
# the real client's flags (vllm bench serve / benchmark_serving.py), same meanings and defaults
@click.option("--dataset-name", default="random", type=click.Choice(["random"]), show_default=True)
@click.option("--random-input-len", type=click.IntRange(min=1), default=1024, show_default=True)
@click.option("--random-output-len", type=click.IntRange(min=1), default=128, show_default=True)
@click.option(
    "--random-range-ratio",
    type=float,
    default=0.0,
    show_default=True,
    help="Lengths uniform in [len*(1-r), len*(1+r)], 0 <= r < 1.",
)
@click.option("--num-prompts", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option(
    "--max-concurrency",
    type=click.IntRange(min=1),
    default=None,
    help="Most requests outstanding; with --request-rate, arrivals wait for a free slot.",
)
@click.option(
    "--request-rate",
    type=float,
    default=float("inf"),
    show_default=True,
    help="Requests/s (Poisson, or gamma with --burstiness); inf sends all at once.",
)
@click.option("--burstiness", type=float, default=1.0, show_default=True)
@click.option(
    "--ignore-eos",
    is_flag=True,
    help="Accepted for compatibility: outputs always reach their length.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--model", default=None, help="Model id or HF config.json (default: the config's).")
@click.option("--percentile-metrics", default="ttft,tpot,itl", show_default=True)
@click.option("--metric-percentiles", default="99", show_default=True)
@click.option("--goodput", multiple=True, metavar="KEY:MS", help="SLO for goodput (repeatable).")
@click.option("--save-result", is_flag=True)
@click.option("--save-detailed", is_flag=True, help="Also per-request lists (lens, ttfts, itls).")
@click.option("--result-dir", type=click.Path(file_okay=False), default=None)
@click.option("--result-filename", default=None)
@click.option("--label", default=None)
@click.option("--metadata", multiple=True, metavar="KEY=VALUE")
@click.option("--backend", default=None, hidden=True, help="Ignored (compatibility).")
# the deployment
@click.option(
    "--config",
    "config",
    type=click.Path(dir_okay=False),
    default=None,
    help="A full run config; the flags below override its single pool.",
)
@click.option("--hw", default=None, help="Hardware id (e.g. h100-sxm).")
@click.option("--tp", type=click.IntRange(min=1), default=None)
@click.option("--pp", type=click.IntRange(min=1), default=None)
@click.option("--ep", type=click.IntRange(min=1), default=None)
@click.option("--dtype", default=None)
@click.option("--instances", type=click.IntRange(min=1), default=None)
@click.option("--scheduler", default=None, help="Batching policy (vllm, sarathi, orca, static).")
@click.option("--engine", default=None, help="Engine profile (vllm, sglang, trtllm).")
@click.option("--max-num-seqs", type=click.IntRange(min=1), default=None)
@click.option("--max-num-batched-tokens", type=click.IntRange(min=1), default=None)
@click.option(
    "--spec-method", default=None, help="Speculative decoding: eagle|eagle3|mtp|draft|ngram."
)
@click.option("--num-speculative-tokens", type=click.IntRange(min=1), default=None)
@click.option("--spec-acceptance-rate", type=float, default=None, help="Per-token acceptance rate.")
# matrices
@click.option(
    "--matrix",
    type=click.Path(dir_okay=False),
    default=None,
    help="Run a matrix YAML (ISL/OSL x concurrency x TP), skipping finished files.",
)
def bench_command(matrix: str | None, backend: str | None, **kwargs) -> None:
    """Simulate a vLLM benchmark_serving run and print/save its result."""
    import servesim
    from servesim.studies.bench import bench_matrix, format_summary

    if matrix:

        def show(status: dict, what: str) -> None:
            extra = f"  {status.get('error', '')}" if what == "error" else ""
            click.echo(f"{what:<8} {status['file']}{extra}", err=True)

        statuses = bench_matrix(matrix, result_dir=kwargs.get("result_dir"), on_point=show)
        counts = {
            s: sum(1 for x in statuses if x["status"] == s) for s in ("done", "skipped", "error")
        }
        click.echo(
            f"matrix: {counts['done']} run, {counts['skipped']} skipped (already done), "
            f"{counts['error']} errors"
        )
        return
    kwargs["goodput"] = list(kwargs["goodput"]) or None
    kwargs["metadata"] = list(kwargs["metadata"]) or None
    result = servesim.bench(**kwargs)
    click.echo(format_summary(result, kwargs["percentile_metrics"], kwargs["metric_percentiles"]))
