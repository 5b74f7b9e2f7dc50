"""Text rendering shared by the CLI commands: number formatting, aligned tables, the run summary.

Pure string functions (no click, no I/O), so every command renders the same way and tests can
check the text directly.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import click

DASH = "-"


def format_option(*choices: str, help: str | None = None):
    """The `--format` option every command shares: the first choice is the default."""
    return click.option("--format", "fmt", type=click.Choice(list(choices)), default=choices[0],
                        show_default=True, help=help)  # fmt: skip


def fmt_num(x: Any, digits: int = 3) -> str:
    """A number for people: None/NaN -> '-', ints with thousands separators, floats with about
    ``digits`` significant digits (no exponent between 1e-3 and 1e9)."""
    if x is None:
        return DASH
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(v):
        return DASH
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e9 or a < 1e-3:
        return f"{v:.{digits - 1}e}"
    decimals = max(digits - 1 - int(math.floor(math.log10(a))), 0)
    return f"{v:,.{decimals}f}"


def fmt_pct(x: Any, digits: int = 3) -> str:
    """A fraction as a percentage ('12.3%'); None -> '-'."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return DASH
    return fmt_num(100.0 * float(x), digits) + "%"


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str] | None = None,
          align: str | None = None, indent: int = 0) -> str:  # fmt: skip
    """An aligned plain-text table. Cells that are not str go through fmt_num. ``align``: one of
    'l'/'r' per column (default: first column left, the rest right)."""
    cells = [[c if isinstance(c, str) else fmt_num(c) for c in row] for row in rows]
    if headers is not None:
        cells.insert(0, list(headers))
    if not cells:
        return ""
    ncol = max(len(r) for r in cells)
    cells = [r + [""] * (ncol - len(r)) for r in cells]
    widths = [max(len(r[i]) for r in cells) for i in range(ncol)]
    align = align or ("l" + "r" * (ncol - 1))
    pad = " " * indent
    lines = []
    for n, row in enumerate(cells):
        parts = [c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(row, widths, align)]
        lines.append(pad + "  ".join(parts).rstrip())
        if n == 0 and headers is not None:
            lines.append(pad + "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def key_values(pairs: Iterable[tuple[str, str]], indent: int = 0) -> str:
    """'label   value' lines with the labels padded to one width."""
    pairs = list(pairs)
    if not pairs:
        return ""
    w = max(len(k) for k, _ in pairs)
    return "\n".join(" " * indent + f"{k.ljust(w)}  {v}" for k, v in pairs)


def to_json(data: Any) -> str:
    """Indented JSON; NaN/inf become null (strict JSON)."""
    return json.dumps(_finite(data), indent=2)


def _finite(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, Mapping):
        return {str(k): _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


# ------------------------------------------------------------------------------ run summary

LATENCY_ROWS = (("TTFT", "ttft_ms"), ("TPOT", "tpot_ms"), ("ITL", "itl_ms"), ("E2E", "e2el_ms"))
LATENCY_COLS = (("mean", "mean"), ("p50", "median"), ("p90", "p90"), ("p95", "p95"),
                ("p99", "p99"), ("p99.9", "p99_9"))  # fmt: skip


def latency_table(s: Mapping[str, Any], indent: int = 2) -> str:
    rows = [
        [name] + [s.get(f"{key}_{stat}") for _, stat in LATENCY_COLS] for name, key in LATENCY_ROWS
    ]
    return table(rows, ["latency (ms)"] + [c for c, _ in LATENCY_COLS], indent=indent)


def _slo_line(s: Mapping[str, Any]) -> str | None:
    targets = list(dict.fromkeys(k[4:].rsplit(".", 1)[0] for k in s if k.startswith("slo.")))
    if not targets:
        return None
    parts = []
    for t in targets:
        metric, _, stat = t.partition("_ms_")
        met = s.get(f"slo.{t}.met")
        parts.append(
            f"{metric.upper()} {stat.replace('_', '.')} {fmt_num(s.get(f'slo.{t}.value'))} "
            f"<= {fmt_num(s.get(f'slo.{t}.target'))} ms: {'met' if met else 'MISSED'}"
        )
    return "; ".join(parts)


def summary_text(s: Mapping[str, Any], title: str | None = None) -> str:
    """The readable summary printed by ``servesim run``."""
    out = [title] if title else []
    kv = [
        ("requests", f"{fmt_num(s.get('completed'))} completed of {fmt_num(s.get('num_requests'))}"
                     f" in {fmt_num(s.get('duration_s'))} s (simulated)"),
        ("throughput", f"{fmt_num(s.get('request_throughput'))} req/s, "
                       f"{fmt_num(s.get('output_throughput'))} output tok/s, "
                       f"{fmt_num(s.get('total_token_throughput'))} total tok/s"),
    ]  # fmt: skip
    why = {"failed_context_window": "longer than the context window",
           "failed_kv_capacity": "larger than the KV cache"}  # fmt: skip
    dropped = [f"{s[k]} {text}" for k, text in why.items() if s.get(k)]
    if dropped:
        kv.insert(1, ("failed", f"{fmt_num(s.get('failed'))} refused: " + ", ".join(dropped)))
    if s.get("goodput_fraction") is not None:
        kv.append(("goodput", f"{fmt_pct(s['goodput_fraction'])} of requests meet the SLO "
                              f"({fmt_num(s.get('goodput_rps'))} req/s)"))  # fmt: skip
    slo = _slo_line(s)
    if slo:
        kv.append(("SLO", slo))
    out.append(key_values(kv))
    out.append("")
    out.append(latency_table(s))
    out.append("")
    out.append(key_values(_utilisation_lines(s) + _energy_cost_lines(s)))
    pools = pool_table(s)
    if pools:
        out += ["", pools]
    return "\n".join(out)


def _utilisation_lines(s: Mapping[str, Any]) -> list[tuple[str, str]]:
    lines = [
        ("compute", f"MFU {fmt_pct(s.get('mfu'))}, MBU {fmt_pct(s.get('mbu'))}, "
                    f"busy {fmt_pct(s.get('busy_fraction'))}"),
        ("batch", f"mean {fmt_num(s.get('batch_size_mean'))}, max {fmt_num(s.get('batch_size_max'))}"),
        ("KV cache", f"mean {fmt_pct(s.get('kv_usage_mean'))}, max {fmt_pct(s.get('kv_usage_max'))}; "
                     f"preemptions {fmt_num(s.get('preemptions'))}; prefix-cache hits "
                     f"{fmt_pct(s.get('prefix_cache_hit_rate'))}"),
        ("queue", f"wait mean {fmt_num(s.get('queue_ms_mean'))} ms, p99 "
                  f"{fmt_num(s.get('queue_ms_p99'))} ms; length mean {fmt_num(s.get('queue_len_mean'))},"
                  f" max {fmt_num(s.get('queue_len_max'))}"),
    ]  # fmt: skip
    if "kv_transfer_ms_mean" in s:
        lines.append(("KV transfer", f"mean {fmt_num(s['kv_transfer_ms_mean'])} ms, p99 "
                                     f"{fmt_num(s.get('kv_transfer_ms_p99'))} ms"))  # fmt: skip
    return lines


def _energy_cost_lines(s: Mapping[str, Any]) -> list[tuple[str, str]]:
    lines = []
    if "energy_kwh" in s:
        lines.append(("energy", f"{fmt_num(s.get('energy_kwh'))} kWh, mean power "
                                f"{fmt_num(s.get('power_avg_W'))} W, "
                                f"{fmt_num(s.get('j_per_output_token'))} J/output token"))  # fmt: skip
    if "cost_usd" in s:
        lines.append(("cost", f"${fmt_num(s.get('cost_usd'))} for the run "
                              f"(${fmt_num(s.get('cost_per_hour_usd'))}/h); "
                              f"${fmt_num(s.get('usd_per_mtok_output'))}/M output tokens, "
                              f"${fmt_num(s.get('usd_per_mtok_blended'))}/M blended"))  # fmt: skip
    return lines


POOL_COLS = (("instances", "instances"), ("util", "utilisation"), ("MFU", "mfu"),
             ("batch", "batch_size_mean"), ("KV mean", "kv_usage_mean"),
             ("queue ms", "queue_ms_mean"), ("requests", "requests"))  # fmt: skip
_PCT_KEYS = {"utilisation", "mfu", "kv_usage_mean"}


def pool_table(s: Mapping[str, Any], indent: int = 0) -> str:
    """One row per pool from the ``pool.<name>.*`` keys; '' when there are none."""
    pools = [k.split(".")[1] for k in s if k.startswith("pool.") and k.endswith(".instances")]
    if not pools:
        return ""
    cols = list(POOL_COLS)
    for head, key in (("energy kWh", "energy_kwh"), ("cost $", "cost_usd")):
        if any(f"pool.{p}.{key}" in s for p in pools):
            cols.append((head, key))
    rows = []
    for p in pools:
        row: list[Any] = [p]
        for _, key in cols:
            v = s.get(f"pool.{p}.{key}")
            row.append(fmt_pct(v) if key in _PCT_KEYS else v)
        rows.append(row)
    return table(rows, ["pool"] + [h for h, _ in cols], indent=indent)
