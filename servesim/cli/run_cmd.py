"""`servesim run [CONFIG.yaml] [flags] [--out DIR]`: simulate one deployment on one workload.

Every flag overrides exactly one key of the run config (FLAG_KEYS; docs/running.md has the table);
--set KEY=VALUE overrides any other key. Without arguments the embedded default runs.
"""

from __future__ import annotations

import sys
from typing import Any

import click
import yaml

import servesim
from servesim.cli import _render
from servesim.specs import SpecError, parse_yaml

# flag (click parameter name) -> dotted config key. Pool flags act on the first pool; use
# --set deployment.pools.N.KEY=VALUE for the others.
FLAG_KEYS: dict[str, str] = {
    "model": "model",
    "hw": "deployment.pools.0.hardware",
    "tp": "deployment.pools.0.parallelism.tp",
    "pp": "deployment.pools.0.parallelism.pp",
    "instances": "deployment.pools.0.instances",
    "scheduler": "deployment.pools.0.scheduler.policy",
    "max_num_seqs": "deployment.pools.0.scheduler.max_num_seqs",
    "max_num_batched_tokens": "deployment.pools.0.scheduler.max_num_batched_tokens",
    "queue": "deployment.pools.0.scheduler.queue",
    "dtype": "dtype",
    "trace": "workload.trace.path",
    "rate": "workload.arrivals.rate",
    "num_requests": "workload.num_requests",
    "concurrency": "workload.clients.concurrency",
    "max_concurrency": "workload.max_concurrency",
    "seed": "seed",
    "spec_method": "deployment.pools.0.speculative.method",
    "num_speculative_tokens": "deployment.pools.0.speculative.num_speculative_tokens",
    "spec_acceptance_rate": "deployment.pools.0.speculative.acceptance.rate",
}


def parse_set(items: tuple[str, ...]) -> dict[str, Any]:
    """--set KEY=VALUE pairs; VALUE is read as YAML (5 -> int, true -> bool, [1, 2] -> list)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise SpecError("--set", "", item, "must be KEY=VALUE with a dotted config key")
        try:
            out[key.strip()] = parse_yaml(text) if text.strip() else ""
        except yaml.YAMLError as exc:
            why = getattr(exc, "problem", None) or "invalid syntax"  # a limit names itself
            raise SpecError("--set", key.strip(), text, f"value is not valid YAML: {why}") from None
    return out


def flag_overrides(params: dict[str, Any]) -> dict[str, Any]:
    """Dotted-key overrides from the flags that were given (None = not given), then --set."""
    out = {FLAG_KEYS[name]: v for name, v in params.items() if name in FLAG_KEYS and v is not None}
    if params.get("trace") is not None:  # a new trace file: detect its format, not the default's
        out["workload.trace.format"] = None
    if params.get("rate") is not None and params.get("concurrency") is not None:
        raise SpecError("flags", "--rate/--concurrency", "both given",
                        "pick one: open-loop arrivals at --rate, or --concurrency closed-loop clients")  # fmt: skip
    out.update(parse_set(params.get("set_items") or ()))
    return out


def _title(cfg: Any) -> str:
    """One line naming the model, the deployment and the workload of a RunConfig."""
    try:
        pools = ", ".join(
            f"{p.role} {p.instances} x {p.hardware.name} (tp{p.parallelism.tp}"
            f"{f' pp{p.parallelism.pp}' if p.parallelism.pp > 1 else ''}, {p.scheduler.policy})"
            for p in cfg.deployment.pools
        )
        wl = cfg.workload
        if wl.trace is not None:
            src = f"trace {wl.trace.path}"
        elif wl.arrivals is not None:
            src = f"{wl.arrivals.process} arrivals at {_render.fmt_num(wl.arrivals.rate)} req/s"
        elif wl.clients is not None:
            src = f"{wl.clients.concurrency} closed-loop clients"
        else:
            src = "workload"
        if getattr(wl, "max_concurrency", None):
            src += f", at most {wl.max_concurrency} outstanding"
        return f"{cfg.model.name} on {pools}; {src}"
    except AttributeError:  # a config shape this line does not know: no title rather than a crash
        return ""


@click.command("run")
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@click.option("--model", help="model: catalog id or HF config.json path  [model]")
@click.option("--hw", help="hardware of the first pool  [deployment.pools.0.hardware]")
@click.option("--tp", type=int, help="tensor parallel size  [deployment.pools.0.parallelism.tp]")
@click.option("--pp", type=int, help="pipeline stages  [deployment.pools.0.parallelism.pp]")
@click.option("--instances", type=int, help="replicas  [deployment.pools.0.instances]")
@click.option("--scheduler", help="vllm|sarathi|orca|static  [deployment.pools.0.scheduler.policy]")
@click.option("--max-num-seqs", type=int, help="[deployment.pools.0.scheduler.max_num_seqs]")
@click.option("--max-num-batched-tokens", type=int,
              help="[deployment.pools.0.scheduler.max_num_batched_tokens]")  # fmt: skip
@click.option(
    "--queue", help="waiting-queue order: fifo|priority|slo  [deployment.pools.0.scheduler.queue]"
)
@click.option("--dtype", help="bf16, fp8, ... for weights, activations and KV  [dtype]")
@click.option("--trace", help="replay this trace file  [workload.trace.path]")
@click.option("--rate", "--request-rate", "rate", type=float,
              help="open-loop arrivals, req/s  [workload.arrivals.rate]")  # fmt: skip
@click.option("--num-requests", "--num-prompts", "num_requests", type=int,
              help="(default with --rate/--concurrency: the trace's count)  [workload.num_requests]")  # fmt: skip
@click.option("--max-concurrency", type=int,
              help="open loop: at most this many outstanding  [workload.max_concurrency]")  # fmt: skip
@click.option("--concurrency", type=int, help="closed-loop clients  [workload.clients.concurrency]")
@click.option("--seed", type=int, help="[seed]")
@click.option(
    "--spec-method", help="eagle|eagle3|mtp|draft|ngram  [deployment.pools.0.speculative.method]"
)
@click.option(
    "--num-speculative-tokens",
    type=int,
    help="draft tokens per step  [deployment.pools.0.speculative.num_speculative_tokens]",
)
@click.option(
    "--spec-acceptance-rate",
    type=float,
    help="per-token acceptance  [deployment.pools.0.speculative.acceptance.rate]",
)
@click.option("--set", "set_items", multiple=True, metavar="KEY=VALUE",
              help="override any config key (dotted; list items by index); repeatable")  # fmt: skip
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="write summary.json, requests/steps parquet, config.yaml, benchmark.json, timeseries.csv")  # fmt: skip
@click.option("--save-detailed", is_flag=True,
              help="benchmark.json also gets the per-request lists (lens, ttfts, itls, ...)")  # fmt: skip
@click.option("--timeline-out", type=click.Path(dir_okay=False),
              help="write the step timeline as a Chrome/Perfetto trace (ui.perfetto.dev)")  # fmt: skip
@click.option("--quiet", "-q", is_flag=True, help="no progress line and no summary table")
@_render.format_option("table", "json", help="summary on stdout as a table or as JSON")
def run_command(
    config: str | None,
    out_dir: str | None,
    timeline_out: str | None,
    quiet: bool,
    fmt: str,
    save_detailed: bool = False,
    **params: Any,
) -> None:
    """Simulate one deployment on one workload and print its summary.

    CONFIG.yaml is a run config (docs/running.md); without it the embedded default runs
    (Llama-3.1-8B on one H100). Flags override single config keys.
    """
    overrides = flag_overrides(params)
    if out_dir:
        servesim.Result.check_out_dir(out_dir)
    if timeline_out:
        from servesim._files import check_out_path

        check_out_path(timeline_out, "--timeline-out", is_dir=False)
    progress = None
    if not quiet and sys.stderr.isatty():
        from servesim._progress import Bar

        progress = Bar("simulating", unit="req")
    try:
        result = servesim.simulate(config, overrides=overrides, progress=progress or False)
    finally:
        if progress is not None:
            progress.close()
    if out_dir:
        result.to_dir(out_dir, detailed=save_detailed)
    if timeline_out:
        servesim.timeline(result, timeline_out)
    if fmt == "json":
        click.echo(_render.to_json(result.summary))
    elif not quiet:
        click.echo(_render.summary_text(result.summary, _title(result.config)))
    if out_dir and not quiet:
        click.echo(f"results written to {out_dir}", err=True)


def register(group: click.Group) -> None:
    group.add_command(run_command)
