"""`servesim bench`: a virtual vLLM benchmark_serving run (or a whole matrix), same result JSON."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    group.add_command(bench_command)


class _VllmCommand(click.Command):
    """Takes several values after --goodput/--metadata (vLLM's nargs) and vLLM's flags that
    have no effect here (bench_flags.NO_EFFECT), so a real command line runs unchanged."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        from servesim.studies import expand_nargs

        return super().parse_args(ctx, expand_nargs(list(args)))


def _no_effect_options(fn):
    from servesim.studies import NO_EFFECT

    for flag, (takes_value, why) in reversed(NO_EFFECT.items()):
        name = "ignored_" + flag[2:].replace("-", "_")
        if takes_value:
            opt = click.option(flag, name, default=None, multiple=True, hidden=True, help=why)
        else:
            opt = click.option(flag, name, is_flag=True, hidden=True, help=why)
        fn = opt(fn)
    return fn


@click.command("bench", cls=_VllmCommand)
# the real client's flags (vllm bench serve), same meanings and defaults; docs/studies.md
@click.option(
    "--dataset-name",
    default="random",
    show_default=True,
    help="random, sharegpt, custom (--dataset-path) or prefix_repetition.",
)
@click.option("--dataset-path", default=None, help="ShareGPT JSON or custom JSONL file.")
@click.option("--disable-shuffle", is_flag=True, default=None)
@click.option("--no-oversample", is_flag=True, default=None)
@click.option("--random-input-len", type=click.IntRange(min=1), default=1024, show_default=True)
@click.option("--random-output-len", type=click.IntRange(min=1), default=128, show_default=True)
@click.option(
    "--random-range-ratio",
    type=float,
    default=0.0,
    show_default=True,
    help="Lengths uniform in [len*(1-r), len*(1+r)], 0 <= r < 1.",
)
@click.option("--random-prefix-len", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--input-len", type=click.IntRange(min=1), default=None, help="= --random-input-len.")
@click.option("--output-len", type=click.IntRange(min=1), default=None,
              help="Output length of every dataset.")  # fmt: skip
@click.option("--sharegpt-output-len", type=click.IntRange(min=1), default=None)
@click.option("--custom-output-len", type=int, default=None, help="vLLM default 256; -1: file's.")
@click.option("--prefix-repetition-prefix-len", type=click.IntRange(min=0), default=None)
@click.option("--prefix-repetition-suffix-len", type=click.IntRange(min=0), default=None)
@click.option("--prefix-repetition-num-prefixes", type=click.IntRange(min=1), default=None)
@click.option("--prefix-repetition-output-len", type=click.IntRange(min=1), default=None)
@click.option("--tokenizer", default=None, help="Cached HF tokenizer for text datasets.")
@click.option("--num-prompts", "--num-requests", "num_prompts", type=click.IntRange(min=1),
              default=1000, show_default=True)  # fmt: skip
@click.option(
    "--max-concurrency",
    type=click.IntRange(min=1),
    default=None,
    help="Most requests outstanding; with --request-rate, arrivals wait for a free slot.",
)
@click.option(
    "--request-rate",
    "--rate",
    "request_rate",
    type=float,
    default=float("inf"),
    show_default=True,
    help="Requests/s (Poisson, or gamma with --burstiness); inf sends all at once.",
)
@click.option("--burstiness", type=float, default=1.0, show_default=True)
@click.option("--ramp-up-strategy", type=click.Choice(["linear", "exponential"]), default=None)
@click.option("--ramp-up-start-rps", type=click.IntRange(min=0), default=None)  # int, as vLLM's
@click.option("--ramp-up-end-rps", type=click.IntRange(min=0), default=None)
@click.option("--num-warmups", type=click.IntRange(min=0), default=0, show_default=True,
              help="Accepted: the simulated server has no cold start to warm.")  # fmt: skip
@click.option(
    "--ignore-eos",
    is_flag=True,
    help="Accepted for compatibility: outputs always reach their length.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--model", default=None, help="Model id, HF repo id or config.json/folder.")
@click.option("--percentile-metrics", default="ttft,tpot,itl", show_default=True)
@click.option("--metric-percentiles", default="99", show_default=True)
@click.option("--goodput", multiple=True, metavar="KEY:MS ...", help="SLOs for goodput.")
@click.option("--save-result", is_flag=True)
@click.option("--save-detailed", is_flag=True, help="Also per-request lists (lens, ttfts, itls).")
@click.option("--append-result", is_flag=True, help="Add the result as a line of the file.")
@click.option("--result-dir", type=click.Path(file_okay=False), default=None)
@click.option("--result-filename", default=None)
@click.option("--label", default=None)
@click.option("--metadata", multiple=True, metavar="KEY=VALUE ...")
@click.option("--disable-tqdm", is_flag=True, help="No progress bar.")
@click.option(
    "--steady-state",
    is_flag=True,
    help="Statistics over the steady window (genai-perf's: after the first burst, before the "
    "drain), as the NIM validation measures.",
)
@click.option("--date", default=None, help="Saved date: YYYYMMDD-HHMMSS or epoch seconds.")
@_no_effect_options
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
def bench_command(matrix: str | None, **kwargs) -> None:
    """Simulate a `vllm bench serve` run and print/save its result.

    Every flag of `vllm bench serve` is accepted; those the simulation cannot use are listed in
    docs/studies.md with the reason they have no effect.
    """
    kwargs = {k: v for k, v in kwargs.items() if not k.startswith("ignored_")}
    import servesim
    from servesim.studies import bench_matrix, format_summary

    if matrix:
        from servesim._progress import Bar
        from servesim.studies import matrix_points

        total = len(matrix_points(matrix)[1])
        with Bar("bench matrix", total, "pt", enabled=not kwargs.get("disable_tqdm")) as bar:

            def show(status: dict, what: str) -> None:
                extra = f"  {status.get('error', '')}" if what == "error" else ""
                click.echo(f"{what:<8} {status['file']}{extra}", err=True)
                bar.advance()

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
