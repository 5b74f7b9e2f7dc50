"""`servesim train`: step time, throughput, MFU/HFU, memory, exposed communication and, with
--tokens, time to train, GPU-hours, energy and cost of one training layout; `--search` ranks the
layouts that fit (fastest or cheapest, Pareto of time vs cost)."""

from __future__ import annotations

from typing import Any

import click
from click.core import ParameterSource

from servesim.cli._render import fmt_num, fmt_pct, format_option, key_values, table, to_json
from servesim.specs import SpecError

GiB = 2**30


def register(group: click.Group) -> None:
    group.add_command(train_command)


def _ints(text: str | None, flag: str) -> list[int] | None:
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items or not all(t.isdigit() and int(t) >= 1 for t in items):
        raise SpecError("servesim train", flag, text, "whole numbers >= 1, comma-separated")
    return [int(t) for t in items]


@click.command("train")
@click.argument("config", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--model", default=None, help="Model id, alias or HF config.json.")
@click.option(
    "--hw", "hardware", default=None, help="Hardware id (--search: comma-separated list)."
)
@click.option(
    "--devices",
    default=None,
    help="Devices (--search: comma-separated budgets, or none with --target-days to scan).",
)
@click.option("--gpus", default=None, help="Alias of --devices.")
@click.option("--tp", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--pp", type=click.IntRange(min=1), default=1, show_default=True)
@click.option(
    "--dp", type=click.IntRange(min=1), default=None, help="Default: devices / (tp x pp x cp)."
)
@click.option("--cp", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--ep", type=click.IntRange(min=1), default=1, show_default=True)
@click.option(
    "--vp",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Virtual pipeline stages per device (interleaved 1F1B).",
)
@click.option("--seq-len", type=click.IntRange(min=1), default=None)
@click.option(
    "--global-batch", type=click.IntRange(min=1), default=None, help="Sequences per step."
)
@click.option("--micro-batch", type=click.IntRange(min=1), default=1, show_default=True)
@click.option(
    "--recompute",
    type=click.Choice(["none", "selective", "full"]),
    default="selective",
    show_default=True,
)
@click.option(
    "--zero", type=click.Choice(["0", "1", "2", "3", "fsdp"]), default="1", show_default=True
)
@click.option(
    "--dtype",
    type=click.Choice(["bf16", "fp16", "fp8", "fp8-block", "nvfp4"]),
    default="bf16",
    show_default=True,
)
@click.option(
    "--tokens", type=float, default=None, help="Training tokens: time, GPU-hours, energy, cost."
)
@click.option(
    "--framework",
    type=click.Choice(["megatron", "megatron-legacy", "torchtitan"]),
    default="megatron",
    show_default=True,
)
@click.option(
    "--schedule", type=click.Choice(["1f1b", "dualpipe"]), default="1f1b", show_default=True
)
@click.option("--search", is_flag=True, help="Rank the layouts that fit instead of costing one.")
@click.option("--objective", type=click.Choice(["time", "cost"]), default="time", show_default=True)
@click.option(
    "--target-days",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="--search: keep layouts that train --tokens within this many days.",
)
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True)
@format_option("table", "json")
def train_command(config: str | None, **opts: Any) -> None:
    """Estimate one training layout (flags or CONFIG with a `training:` section), or --search."""
    fmt = opts.pop("fmt")
    if opts["gpus"] is not None:
        if opts["devices"] is not None and opts["devices"] != opts["gpus"]:
            raise SpecError("servesim train", "--gpus", opts["gpus"], "conflicts with --devices")
        opts["devices"] = opts["gpus"]
    if opts.pop("search"):
        _search(opts, fmt)
        return
    import servesim.training as T

    if config is not None:
        from servesim.training import load_train_config

        ctx = click.get_current_context()
        given = [n for n in opts if ctx.get_parameter_source(n) == ParameterSource.COMMANDLINE]
        if given:
            flag = "--" + given[0].replace("_", "-").replace("hardware", "hw")
            raise SpecError("servesim train", flag, opts[given[0]],
                            "give a CONFIG or flags, not both (edit the config's training: section)")  # fmt: skip

        kw = load_train_config(config)
    else:
        for flag, key in (("--model", "model"), ("--hw", "hardware"), ("--seq-len", "seq_len"),
                          ("--global-batch", "global_batch")):  # fmt: skip
            if opts[key] is None:
                raise SpecError("servesim train", flag, "<missing>", "required (or give a CONFIG)")
        devices = _ints(opts["devices"], "--devices")
        if devices is not None and len(devices) > 1:
            raise SpecError(
                "servesim train",
                "--devices",
                opts["devices"],
                "one number (lists are for --search)",
            )
        kw = {k: opts[k] for k in ("model", "hardware", "tp", "pp", "dp", "cp", "ep", "vp",
                                   "seq_len", "global_batch", "micro_batch", "recompute", "zero",
                                   "dtype", "tokens", "framework", "schedule")}  # fmt: skip
        kw["devices"] = devices[0] if devices else None
    est = T.train(**kw)
    click.echo(to_json(est.to_dict()) if fmt == "json" else render(est))


def _search(opts: dict[str, Any], fmt: str) -> None:
    from servesim.training import search_layouts

    for flag, key in (("--model", "model"), ("--hw", "hardware"), ("--seq-len", "seq_len"),
                      ("--global-batch", "global_batch")):  # fmt: skip
        if opts[key] is None:
            raise SpecError("servesim train --search", flag, "<missing>", "required")
    hardware = [h.strip() for h in opts["hardware"].split(",") if h.strip()]
    frame = search_layouts(
        opts["model"], hardware, _ints(opts["devices"], "--devices"), seq_len=opts["seq_len"],
        global_batch=opts["global_batch"], dtype=opts["dtype"], tokens=opts["tokens"],
        target_days=opts["target_days"], objective=opts["objective"], top=opts["top"],
        framework=opts["framework"],
    )  # fmt: skip
    if fmt == "json":
        click.echo(to_json(frame.to_dict(orient="records")))
        return
    cols = ("rank", "hardware", "devices", "layout", "step_s", "tokens_per_s_per_device", "mfu",
            "memory_GiB", "days", "cost_usd", "pareto")  # fmt: skip
    heads = ("#", "hardware", "devices", "layout", "step s", "tok/s/dev", "MFU", "GiB", "days",
             "cost $", "pareto")  # fmt: skip
    rows = [[fmt_pct(r[c]) if c == "mfu" else ("*" if c == "pareto" and r[c] else
             ("" if c == "pareto" else r[c])) for c in cols] for _, r in frame.iterrows()]  # fmt: skip
    click.echo(table(rows, heads, align="rllllrrrrrrl"[: len(heads)]))
    click.echo("")
    for _, r in frame.iterrows():
        click.echo(f"{r['rank']:>2}. {r['reason']}")


def render(est: Any) -> str:
    """The text report of one estimate."""
    lo = est.layout
    mem = est.memory_breakdown
    head = [
        ("model", est.model), ("hardware", f"{est.hardware} x {lo.devices}"),
        ("layout", f"tp {lo.tp}  pp {lo.pp} (vp {lo.vp})  dp {lo.dp}  cp {lo.cp}  ep {lo.ep}  "
                   f"{lo.schedule}  {lo.framework}"),
        ("batch", f"{lo.global_batch} x {lo.seq_len} tokens; micro-batch {lo.micro_batch}; "
                  f"{lo.microbatches} micro-batches per DP rank"),
        ("precision", f"{lo.dtype}; recompute {lo.recompute}; ZeRO {lo.zero}"),
        ("step time", f"{fmt_num(est.step_s)} s"),
        ("tokens/s", f"{fmt_num(est.tokens_per_s)} cluster, {fmt_num(est.tokens_per_s_per_device)} per device"),
        ("model TFLOP/s/dev", fmt_num(est.tflops_per_device)),
        ("MFU / HFU", f"{fmt_pct(est.mfu)} / {fmt_pct(est.hfu)} of {fmt_num(est.peak_tflops)} "
                      "TFLOP/s dense peak (6N + causal-halved attention; HFU adds recomputation)"),
        ("pipeline bubble", f"{fmt_pct(est.bubble_fraction)} ((pp-1)/(vp x micro-batches))"),
        ("bottleneck", est.bottleneck),
    ]  # fmt: skip
    fit = "fits" if est.fits else "does NOT fit"
    mem_rows = [
        ("weights", mem["weights"]), ("gradients", mem["gradients"]),
        ("optimizer states", mem["optimizer"]),
        (f"activations ({lo.recompute})", mem["activations"]),
        ("activations (no recompute)", mem["activations_no_recompute"]),
        ("logits", mem["logits"]), ("reserved", mem["reserved"]),
    ]  # fmt: skip
    out = [key_values(head), "", "memory per device (busiest stage):"]
    out.append(key_values([(k, f"{v / GiB:,.1f} GiB") for k, v in mem_rows], indent=2))
    out.append(
        f"  total {est.memory_per_device_bytes / GiB:,.1f} GiB of "
        f"{est.capacity_bytes / GiB:,.1f} GiB: {fit} ({est.headroom_bytes / GiB:+,.1f} GiB)"
    )
    out += ["", "exposed communication per step:"]
    out.append(
        key_values([(k, f"{fmt_num(v)} s") for k, v in est.exposed_comm_s.items()], indent=2)
    )
    frame = est.breakdown.groupby("phase", sort=False)[["seconds", "exposed_s"]].sum()
    out += [
        "",
        table(
            [[p, r.seconds, r.exposed_s] for p, r in frame.iterrows()],
            ["phase", "seconds", "exposed s"],
        ),
    ]
    if est.time_to_train_s is not None:
        d = est.cost_detail or {}
        out += ["", key_values([
            ("tokens", fmt_num(est.tokens)),
            ("time to train", f"{fmt_num(est.time_to_train_s / 86400)} days"),
            ("GPU-hours", fmt_num(est.gpu_hours)),
            ("energy", f"{fmt_num(est.energy_kwh)} kWh (device {fmt_num(d.get('device_W'))} W "
                       f"+ host {fmt_num(d.get('host_W_per_device'))} W, PUE {fmt_num(d.get('pue'))})"),
            ("cost", f"${fmt_num(est.cost_usd)} at ${fmt_num(d.get('usd_per_device_hour'))}/device-h "
                     f"({d.get('price_source', '')})"),
        ])]  # fmt: skip
    return "\n".join(out)
