"""`servesim roofline`: per-operator FLOPs, bytes, time and bound for one step of one model."""

from __future__ import annotations

import re

import click

import servesim
from servesim.cli._render import fmt_num, fmt_pct, format_option, key_values, table, to_json
from servesim.specs import SpecError

_PREFILL_RE = re.compile(r"^(\d+)(?:@(\d+))?$")
_DECODE_RE = re.compile(r"^(\d+)@(\d+)$")


def register(group: click.Group) -> None:
    group.add_command(roofline)


def _parse(
    values: tuple[str, ...], pattern: re.Pattern, flag: str, form: str
) -> list[tuple[int, int]]:
    out = []
    for v in values:
        m = pattern.match(v.strip())
        if not m:
            raise SpecError("roofline", flag, v, f"must be {form}")
        first, second = int(m.group(1)), int(m.group(2) or 0)
        if first < 1 or (flag == "--decode" and second < 1):
            raise SpecError("roofline", flag, v, "counts must be >= 1")
        out.append((first, second))
    return out


@click.command("roofline")
@click.option(
    "--model", "model", required=True, help="Model id, alias, template YAML or HF config.json."
)
@click.option("--hw", "hw", required=True, help="Hardware id, alias or profile YAML.")
@click.option("--tp", type=int, default=1, show_default=True, help="Tensor-parallel devices.")
@click.option("--pp", type=int, default=1, show_default=True, help="Pipeline stages.")
@click.option("--ep", type=int, default=1, show_default=True, help="Expert-parallel devices (MoE).")
@click.option("--dp-attn", "dp_attn", type=int, default=1, show_default=True,
              help="Attention data-parallel groups (DeepSeek-style, with --ep).")  # fmt: skip
@click.option(
    "--dtype", default="bf16", show_default=True, help="Weights/activations/KV format, e.g. fp8."
)
@click.option("--prefill", multiple=True, metavar="CHUNK[@CACHED]",
              help="A prefill chunk of CHUNK new tokens after CACHED cached ones (repeatable).")  # fmt: skip
@click.option("--decode", multiple=True, metavar="BATCH@CONTEXT",
              help="BATCH sequences decoding at CONTEXT tokens each (repeatable).")  # fmt: skip
@click.option("--overhead-s", "overhead_s", type=float, default=None,
              help="Per-step CPU/framework overhead (default: the hardware profile's).")  # fmt: skip
@format_option("table", "json", "csv")
def roofline(model, hw, tp, pp, ep, dp_attn, dtype, prefill, decode, overhead_s, fmt) -> None:
    """Per-operator cost of one step: FLOPs, bytes, seconds, bound, share; MFU, MBU, bottleneck.

    With neither --prefill nor --decode, the step is one sequence decoding at a 1024-token context.
    `seconds` is one instance of the operator (one layer, one device); `count` how often it runs.
    """
    pre = _parse(prefill, _PREFILL_RE, "--prefill", "CHUNK or CHUNK@CACHED (whole numbers)")
    dec = _parse(decode, _DECODE_RE, "--decode", "BATCH@CONTEXT (whole numbers)")
    df = servesim.roofline(
        model, hw, tp=tp, pp=pp, ep=ep, dp_attn=dp_attn, dtype=dtype,
        prefill=pre or None, decode=dec or None, overhead_s=overhead_s,
    )  # fmt: skip
    fit = servesim.model_info(model, hw, tp=tp, pp=pp, ep=ep, dp_attn=dp_attn, dtype=dtype)
    if not fit.get("fits", True):  # a step of a deployment that cannot load is no answer
        raise SpecError("roofline", "parallelism", f"tp={tp} pp={pp} ep={ep}",
                        fit.get("reason") or "the model does not fit")  # fmt: skip
    s = dict(df.attrs)
    if fmt == "csv":
        click.echo(df.to_csv(index=False), nl=False)
    elif fmt == "json":
        click.echo(to_json({"ops": df.to_dict(orient="records"), "summary": s}))
    else:
        click.echo(_render(df, s))


def _render(df, s: dict) -> str:
    a = s["aggregates"]
    head = (
        f"{s['model']} on {s['hardware']} x {s['devices']} (tp={s['tp']} pp={s['pp']} ep={s['ep']} "
        f"dp_attn={s['dp_attn']}), {s['dtype']}; prefill {a['prefill_tokens']} tokens in "
        f"{a['prefill_seqs']} chunks, decode {a['decode_seqs']} seqs over {a['decode_ctx']} context tokens"
    )
    rows = [
        [r.name, r.count, fmt_num(r.flops), fmt_num(r.bytes), fmt_num(r.seconds * 1e6), fmt_num(r.total_s * 1e6), r.bound, fmt_pct(r.share)]
        for r in df.itertuples(index=False)
    ]  # fmt: skip
    body = table(rows, ["op", "count", "FLOPs", "bytes", "us", "total us", "bound", "share"])
    kv = [
        ("step", f"{fmt_num(s['step_s'] * 1e3)} ms (compute {fmt_num(s['compute_s'] * 1e3)}, memory "
                 f"{fmt_num(s['memory_s'] * 1e3)}, comm {fmt_num(s['comm_s'] * 1e3)}, overhead "
                 f"{fmt_num(s['overhead_s'] * 1e3)} ms)"),
        ("throughput", f"{fmt_num(s['tokens_per_s'])} tokens/s"),
        ("MFU / MBU", f"{fmt_pct(s['mfu'])} / {fmt_pct(s['mbu'])}"),
        ("bottleneck", s["bottleneck"] or "-"),
    ]  # fmt: skip
    return "\n".join([head, "", body, "", key_values(kv)])
