"""`servesim list ...` and `servesim show ...`: the hardware, model, scheduler and trace catalogs."""

from __future__ import annotations

import json
import math
from typing import Any

import click

import servesim
from servesim import catalog
from servesim.cli._render import format_option
from servesim.specs import (
    CostSpec,
    SpecError,
    flatten_keys,
    load_hardware,
    load_model,
    parse_dtypes,
)

_FORMAT = format_option("table", "json", help="Output format.")
_LISTS = {
    "hardware": catalog.list_hardware,
    "models": catalog.list_models,
    "schedulers": catalog.list_schedulers,
    "traces": catalog.list_traces,
}


def register(group: click.Group) -> None:
    group.add_command(list_cmd)
    group.add_command(show)


@click.command("list")
@click.argument("what", type=click.Choice(list(_LISTS)))
@_FORMAT
def list_cmd(what: str, fmt: str) -> None:
    """List a catalog: hardware, models, schedulers or traces."""
    frame = _LISTS[what]()
    if fmt == "json":
        click.echo(json.dumps(_clean(frame.to_dict(orient="records")), indent=2))
    elif frame.empty:
        click.echo(f"(no {what} available)")
    else:
        click.echo(_table(frame))


def _table(frame: Any) -> str:
    """Plain aligned text: text columns left-aligned, numbers right-aligned, missing as '-'."""
    cols = list(frame.columns)
    rows = [[_cell(v) for v in rec] for rec in frame.itertuples(index=False)]
    from pandas.api.types import is_numeric_dtype  # pandas only when a table is shown

    numeric = [is_numeric_dtype(frame[c]) for c in cols]
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(cols)]

    def line(cells: list[str]) -> str:
        parts = [x.rjust(w) if num else x.ljust(w) for x, w, num in zip(cells, widths, numeric)]
        return "  ".join(parts).rstrip()

    return "\n".join([line(cols)] + [line(r) for r in rows])


def _cell(value: Any) -> str:
    if _missing(value):
        return "-"
    if isinstance(value, float):
        return f"{value:.10g}"
    return str(value)


@click.group()
def show() -> None:
    """Show one catalog entry in detail."""


@show.command("hardware")
@click.argument("name")
@click.option("--tco", is_flag=True, help="Add the TCO breakdown per hour and per device.")
@click.option("--devices", type=click.IntRange(min=1), default=8, show_default=True,
              help="Devices for --tco.")  # fmt: skip
@click.option("--bottom-up", "bottom_up", is_flag=True,
              help="Where the dollars and watts come from: die, memory, packaging, system, power, "
                   "amortisation, each input with its source (with --tco or alone).")  # fmt: skip
@click.option("--utilisation", type=click.FloatRange(0, 1), default=None,
              help="Device utilisation the energy line assumes (default: cost.utilisation, 0.5).")  # fmt: skip
@_FORMAT
def show_hardware(
    name: str, tco: bool, devices: int, bottom_up: bool, utilisation: float | None, fmt: str
) -> None:
    """One hardware profile (id, alias or YAML path, which may derive from a base): every number;
    with --tco its cost of ownership; with --bottom-up that cost built from the silicon."""
    hw = load_hardware(name, where="show hardware")
    info: dict[str, Any] = catalog.describe_hardware(hw)
    if hw.bottom_up:  # the die/clock/packaging inputs of the bottom-up cost, as in the profile
        info["silicon"] = dict(hw.bottom_up)
    derivation = _derivation(hw)
    if derivation:
        info["derivation"] = derivation
    spec = CostSpec() if utilisation is None else CostSpec(utilisation=utilisation)
    if tco:
        breakdown = _optional_api("tco_breakdown", "--tco")
        info["tco"] = breakdown(hw, devices=devices, spec=spec)
    if bottom_up:
        from servesim.accounting import bottom_up

        info["bottom_up"] = bottom_up(hw, spec, devices=devices)
    if bottom_up:
        _cite_profile(info["bottom_up"], name)
    if bottom_up and fmt != "json":
        _render_bottom_up(info)
        return
    _render(info, fmt)


def _derivation(hw: Any) -> dict[str, str]:
    from servesim.specs import derivation

    return derivation(hw)


def _cite_profile(bottom_up: dict[str, Any], name: str) -> None:
    """Inputs taken from the profile carry that line's source comment."""
    from servesim.specs import profile_comments

    try:
        comments = profile_comments(name)
    except SpecError:  # not a file (an inline mapping has no comments)
        return
    for key, source in bottom_up["sources"].items():
        cited = comments.get(key.replace("io_die.", "die.io_"))
        if source == "profile" and cited:
            bottom_up["sources"][key] = f"profile: {cited}"


def _render_bottom_up(info: dict[str, Any]) -> None:
    """The profile, then one line per bottom-up quantity with its value and its source."""
    bu = info.pop("bottom_up")
    _render(info, "table")
    values, sources = bu["values"], bu["sources"]
    width = max(len(k) for k in values) + len("bottom_up.")
    click.echo("")
    for key, value in values.items():
        shown = _show(key, value)
        if isinstance(value, float) and ("usd" in key or key.endswith("_W")):
            shown = f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
        click.echo(f"{'bottom_up.' + key:<{width}}  {shown:>14}  {sources.get(key, '')}")


@show.command("model")
@click.argument("name")
@click.option("--hw", "hardware", default=None, help="Hardware id/alias/path: check the fit.")
@click.option("--tp", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--pp", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--ep", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--dtype", default="bf16", show_default=True,
              help="Weights/activations/KV format (bf16, fp8, fp4, int4, ...).")  # fmt: skip
@click.option("--gpu-memory-utilization", "gpu_mem", type=click.FloatRange(0, 1, min_open=True),
              default=0.9, show_default=True)  # fmt: skip
@click.option("--ops", "ops", is_flag=True,
              help="The operator list the cost model derives from, with each one's weights.")  # fmt: skip
@_FORMAT
def show_model(
    name: str, hardware: str | None, tp: int, pp: int, ep: int, dtype: str, gpu_mem: float,
    fmt: str, ops: bool = False,
) -> None:  # fmt: skip
    """One model (id, alias, template YAML or HF config.json): shapes, params, weight and KV bytes."""
    dtypes = parse_dtypes(dtype, "show model", "--dtype")
    model = load_model(name, where="show model")
    hw = load_hardware(hardware, where="show model --hw") if hardware else None
    if ops:
        from servesim.cli.ops_table import render_operators

        fit = dict(hw=hw, gpu_memory_utilization=gpu_mem) if hw else None
        click.echo(render_operators(model, dtypes, tp=tp, pp=pp, ep=ep, fmt=fmt, fit=fit))
        return
    info: dict[str, Any] = catalog.describe_model(model, ("bf16", "fp8", dtypes.weights))
    model_info = _optional_api("model_info", "--hw" if hw else None)
    if model_info is not None:
        # the cost model's byte counts (16-bit embeddings, sharding, fit) replace the plain
        # params x bytes-per-element estimates
        info = {k: v for k, v in info.items() if not k.startswith(("weight_bytes_", "kv_bytes_"))}
        info.update(
            model_info(model, hw, tp=tp, pp=pp, ep=ep, dtype=dtype, gpu_memory_utilization=gpu_mem)
        )
    _render(_tidy_model_info(info), fmt)


def _tidy_model_info(info: dict[str, Any]) -> dict[str, Any]:
    """Drop repeats and empty fields, and say how many full-length contexts the KV cache holds."""
    out = {k: v for k, v in info.items() if not (k == "name" and v == info.get("id"))}
    if out.get("reason") == "":
        out.pop("reason")
    tokens, context = out.get("kv_capacity_tokens"), out.get("max_position_embeddings")
    if isinstance(tokens, (int, float)) and isinstance(context, int) and context > 0:
        # how many requests at the model's longest context fit in the KV cache at once
        out["kv_capacity_max_context_seqs"] = round(float(tokens) / context, 2)
    return out


def _optional_api(attr: str, flag: str | None) -> Any:
    """A public API function that may not be built yet; required only when `flag` asks for it."""
    try:
        return getattr(servesim, attr)
    except (ImportError, AttributeError):
        if flag is None:
            return None
        raise SpecError("servesim", flag, attr, "not available in this build") from None


def _render(info: dict[str, Any], fmt: str) -> None:
    if fmt == "json":
        click.echo(json.dumps(_clean(info), indent=2))
        return
    flat = flatten_keys(info)
    width = max(len(k) for k in flat)
    for key, value in flat.items():
        click.echo(f"{key:<{width}}  {_show(key, value)}")


def _missing(value: Any) -> bool:
    import pandas as pd

    if value is None or value is pd.NA or value == "":
        return True
    return isinstance(value, float) and math.isnan(value)


def _show(key: str, value: Any) -> str:
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy scalar -> Python number
    if _missing(value):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key.startswith("params") and isinstance(value, int):
        return f"{value / 1e9:.2f} B ({value:,})"
    if "bytes" in key and isinstance(value, (int, float)) and value >= 1e6:
        return f"{value / 1e9:.2f} GB ({value:,.0f} bytes)"
    if "bytes" in key and isinstance(value, (int, float)) and float(value).is_integer():
        return f"{int(value):,} bytes"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) if value else "-"
    if isinstance(value, dict):
        return "-" if not value else json.dumps(value)
    return str(value)


def _clean(value: Any) -> Any:
    """JSON-ready: NaN -> null, numpy scalars -> Python numbers."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    import pandas as pd

    if value is pd.NA:
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
