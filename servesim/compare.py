"""Two result sets side by side: per matching config, each metric from A and B and the ratio B/A.

A result set is any of: a directory of benchmark_serving JSONs (simulated by `servesim bench` or
measured by the real client; configs keyed by the file-name pattern
`..._tp{tp}_isl{isl}_osl{osl}_conc{conc}.json`), one such JSON, a sweep (its directory or table;
keyed by its input columns), a run directory (summary.json), a directory of run directories, or a
CSV/Parquet table of measurements (keyed by known config columns: tp, isl, osl, conc, ...).

Column names are normalised to the benchmark_serving names (`ttft_ms_p99` and `p99_ttft_ms` are
one metric; `concurrency` and `max_concurrency` are `conc`), so a sweep compares with bench files.
With measured data on exactly one side the table is an accuracy table: error % of the simulated
value against the measured one per metric, and the mean absolute percentage error (MAPE).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from servesim._callable import make_callable
from servesim._files import is_hidden, read_json, read_table
from servesim.specs.common import SpecError

FILE_KEYS = re.compile(r"_tp(?P<tp>\d+)_isl(?P<isl>\d+)_osl(?P<osl>\d+)_conc(?P<conc>\d+)$")
_LAT = re.compile(r"^(ttft|tpot|itl|e2el)_(?:ms_)?(mean|median|std|p\d+(?:[._]\d+)?)(?:_ms)?$")
_LAT2 = re.compile(r"^(mean|median|std|p\d+(?:[._]\d+)?)_(ttft|tpot|itl|e2el)(?:_ms)?$")

# config column -> canonical key name (bench flags, sweep dotted keys, measured CSV headers)
KEY_ALIASES = {
    "tp": "tp", "tensor_parallel": "tp", "tensor_parallel_size": "tp",
    "deployment.pools.0.parallelism.tp": "tp",
    "pp": "pp", "deployment.pools.0.parallelism.pp": "pp",
    "ep": "ep", "deployment.pools.0.parallelism.ep": "ep",
    "isl": "isl", "input_len": "isl", "random_input_len": "isl",
    "workload.lengths.input.mean": "isl",
    "osl": "osl", "output_len": "osl", "random_output_len": "osl",
    "workload.lengths.output.mean": "osl",
    "conc": "conc", "concurrency": "conc", "max_concurrency": "conc",
    "workload.clients.concurrency": "conc",
    "rate": "rate", "request_rate": "rate", "workload.arrivals.rate": "rate",
    "hardware": "hardware", "hw": "hardware", "deployment.pools.0.hardware": "hardware",
    "instances": "instances", "deployment.pools.0.instances": "instances",
    "model": "model", "dtype": "dtype",
}  # fmt: skip
METRIC_ALIASES = {
    "duration_s": "duration",
    "output_throughput_tok_s": "output_throughput",
    "total_token_throughput_tok_s": "total_token_throughput",
    "request_throughput_rps": "request_throughput",
    "goodput_rps": "request_goodput",
}
DEFAULT_METRICS = (
    "output_throughput", "request_throughput", "total_token_throughput",
    "mean_ttft_ms", "median_ttft_ms", "p99_ttft_ms",
    "mean_tpot_ms", "median_tpot_ms", "p99_tpot_ms",
    "mean_itl_ms", "median_itl_ms", "p99_itl_ms",
    "mean_e2el_ms", "p99_e2el_ms",
)  # fmt: skip


@dataclass
class ResultSet:
    name: str
    table: pd.DataFrame  # canonical column names
    keys: list[str]  # config columns that identify a row
    measured: bool


def canonical_metric(name: str) -> str:
    """`ttft_ms_p99`, `ttft_p99_ms`, `p99_ttft_ms` -> `p99_ttft_ms`; other names via METRIC_ALIASES."""
    m = _LAT.match(name)
    if m:
        metric, stat = m.groups()
    else:
        m2 = _LAT2.match(name)
        if not m2:
            return METRIC_ALIASES.get(name, name)
        stat, metric = m2.groups()
    stat = stat.replace("_", ".")
    return f"{stat}_{metric}_ms"


def is_metric(name: str) -> bool:
    """True for a throughput or latency metric under any of its spellings (see canonical_metric)."""
    canon = canonical_metric(str(name))
    return canon in DEFAULT_METRICS or canon.endswith("_ms") or "throughput" in canon


def _canonical_columns(df: pd.DataFrame, keys: Sequence[str]) -> tuple[pd.DataFrame, list[str]]:
    rename, out_keys = {}, []
    for c in df.columns:
        if c in keys or c in KEY_ALIASES:
            new = KEY_ALIASES.get(c, c)
            rename[c] = new
            if new not in out_keys:
                out_keys.append(new)
        else:
            rename[c] = canonical_metric(str(c))
    df = df.rename(columns=rename)
    df = df.loc[:, ~df.columns.duplicated()]
    return df, out_keys


# --------------------------------------------------------------------------- loading


def _bench_row(path: Path) -> tuple[dict, bool]:
    data = read_json(path)
    if not isinstance(data, dict) or not any(is_metric(k) for k in data):
        raise SpecError(
            str(path), "", path.name,
            "not a benchmark result (a JSON object with output_throughput, mean_ttft_ms, ...)",
        )  # fmt: skip
    row = {k: v for k, v in data.items() if _is_number(v)}
    m = FILE_KEYS.search(path.stem)
    if m:
        row.update({k: int(v) for k, v in m.groupdict().items()})
    else:
        row["config"] = path.stem
    simulated = "servesim" in data or data.get("backend") == "servesim"
    return row, not simulated


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _run_row(d: Path) -> dict:
    row = {}
    for name in ("summary.json", "benchmark.json"):
        f = d / name
        if f.is_file():
            data = read_json(f)
            if not isinstance(data, dict):
                raise SpecError(str(f), "", f.name, "must be a JSON object")
            row.update({canonical_metric(k): v for k, v in data.items() if _is_number(v)})
    return row


def load_results(path: str | Path, measured: bool | None = None) -> ResultSet:
    """Read one result set (see the module doc); `measured` overrides the detection."""
    p = Path(path)
    if not p.exists():
        raise SpecError(str(p), "", str(p), "no such file or directory")
    keys: list[str] = []
    is_measured = False
    if p.is_dir() and (p / "summary.json").is_file():
        table = pd.DataFrame([_run_row(p)])
    elif p.is_dir() and ((p / "results.parquet").is_file() or (p / "results.csv").is_file()):
        from servesim.sweep import load_table

        table, keys = load_table(p)
        keys = [*keys, "seed"] if "seed" in table else keys
        table = table.drop(columns=[c for c in ("point", "error") if c in table])
    elif p.is_dir():
        table, keys, is_measured = _load_dir(p)
    elif p.suffix == ".json":
        row, is_measured = _bench_row(p)
        table = pd.DataFrame([row])
        keys = [k for k in ("tp", "isl", "osl", "conc", "config") if k in row]
    elif p.suffix in (".csv", ".parquet"):
        table = read_table(p)
        sweep_meta = p.parent / "sweep.json"
        if sweep_meta.is_file():
            from servesim.sweep import load_table

            table, keys = load_table(p)
            table = table.drop(columns=[c for c in ("point", "error") if c in table])
        else:
            is_measured = True
    else:
        raise SpecError(
            str(p), "", p.suffix, "unknown result kind: a directory, .json, .csv or .parquet"
        )
    table, keys = _canonical_columns(table, keys)
    keys = [k for k in keys if k in table.columns]
    return ResultSet(p.name or str(p), table, keys, is_measured if measured is None else measured)


def _load_dir(p: Path) -> tuple[pd.DataFrame, list[str], bool]:
    # hidden names are temporaries of atomic writes (a killed `run --out` leaves .NAME.tmp-*)
    files = sorted(
        f for f in p.glob("*.json") if not f.name.endswith(".pytorch.json") and not is_hidden(f)
    )
    if files:
        rows, flags = zip(*(_bench_row(f) for f in files))
        keys = ["tp", "isl", "osl", "conc"] if all("tp" in r for r in rows) else ["config"]
        return pd.DataFrame(list(rows)), keys, all(flags)
    runs = sorted(
        d for d in p.iterdir() if d.is_dir() and not is_hidden(d) and (d / "summary.json").is_file()
    )
    if runs:
        rows = [{"config": d.name, **_run_row(d)} for d in runs]
        return pd.DataFrame(rows), ["config"], False
    raise SpecError(str(p), "", str(p), "holds no benchmark JSONs, sweep table or run directories")


# --------------------------------------------------------------------------- comparing


def compare(
    a: str | Path | ResultSet,
    b: str | Path | ResultSet,
    metrics: Sequence[str] | None = None,
    *,
    measured: str | None = None,
) -> pd.DataFrame:
    """One row per (matching config, metric): values from A and B, ratio B/A.

    measured: "a", "b" or "none" to say which side is measured (default: detected; measured =
    benchmark JSONs without servesim's marker, or a table that servesim did not write). With one
    measured side the frame also has `error_pct` = (simulated - measured) / measured x 100, and
    `frame.attrs["mape"]` maps each metric to its mean absolute error %.
    """
    if measured not in (None, "a", "b", "none"):
        raise SpecError("compare", "measured", measured, "must be a, b or none")
    flags = (
        {"a": None, "b": None} if measured is None else {"a": measured == "a", "b": measured == "b"}
    )
    ra = a if isinstance(a, ResultSet) else load_results(a, flags["a"])
    rb = b if isinstance(b, ResultSet) else load_results(b, flags["b"])
    merged, keys = _match(ra, rb)
    names = _metrics(ra, rb, metrics)
    rows = []
    for r in merged.to_dict("records"):  # not iterrows: it would turn int keys into floats
        for m in names:
            va, vb = _num(r.get(f"{m}__a")), _num(r.get(f"{m}__b"))
            row = {k: r[k] for k in keys}
            row.update(
                metric=m,
                a=va,
                b=vb,
                ratio=vb / va if va not in (0.0, None) and vb is not None else None,
            )
            rows.append(row)
    out = pd.DataFrame(rows, columns=[*keys, "metric", "a", "b", "ratio"])
    # config columns only one side has (e.g. seed, hardware) are averaged over: say so
    out.attrs.update(
        a=ra.name, b=rb.name, keys=keys, averaged_over=merged.attrs.get("averaged_over", [])
    )
    if ra.measured != rb.measured:
        sim, meas = ("b", "a") if ra.measured else ("a", "b")
        out["error_pct"] = (out[sim] - out[meas]) / out[meas] * 100.0
        mape = (
            out.assign(abs_err=out["error_pct"].abs())
            .groupby("metric", sort=False)["abs_err"]
            .mean()
        )
        out.attrs.update(
            measured=meas, mape={k: float(v) for k, v in mape.items() if not math.isnan(v)}
        )
    return out


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _match(ra: ResultSet, rb: ResultSet) -> tuple[pd.DataFrame, list[str]]:
    order = {
        k: i
        for i, k in enumerate(("model", "hardware", "tp", "pp", "ep", "isl", "osl", "conc", "rate"))
    }
    keys = sorted((k for k in ra.keys if k in rb.keys), key=lambda k: order.get(k, len(order)))
    ta, tb = ra.table, rb.table
    if not keys:
        if len(ta) == 1 and len(tb) == 1:  # two single runs: compare them directly
            ta, tb = ta.assign(config=ra.name), tb.assign(config=ra.name)
            keys = ["config"]
        else:
            raise SpecError(
                "compare",
                "keys",
                f"{ra.keys} vs {rb.keys}",
                "the two result sets share no config columns to match rows on",
            )
    averaged = sorted(
        {k for r, t in ((ra, ta), (rb, tb)) for k in r.keys if k not in keys and t[k].nunique() > 1}
    )
    ta, tb = _aggregate(ta, keys), _aggregate(tb, keys)
    for k in keys:  # "8" and 8 match
        ta[k], tb[k] = ta[k].map(_key_value), tb[k].map(_key_value)
    merged = ta.merge(tb, on=keys, how="inner", suffixes=("__a", "__b"))
    if merged.empty:
        raise SpecError("compare", "keys", ", ".join(keys), "no config appears in both result sets")
    merged = merged.sort_values(keys, kind="stable").reset_index(drop=True)
    merged.attrs["averaged_over"] = averaged
    return merged, keys


def _key_value(v: Any) -> Any:
    f = _num(v)
    if f is not None and not isinstance(v, str):
        return int(f) if f.is_integer() else f
    if isinstance(v, str):
        try:
            g = float(v)
            return int(g) if g.is_integer() else g
        except ValueError:
            return v
    return v


def _aggregate(t: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Repeated rows of one config (seeds) -> their mean; every metric gets a suffix on merge."""
    numeric = [c for c in t.columns if c not in keys and pd.api.types.is_numeric_dtype(t[c])]
    return t[keys + numeric].groupby(keys, dropna=False, sort=False).mean().reset_index()


def _metrics(ra: ResultSet, rb: ResultSet, metrics: Sequence[str] | None) -> list[str]:
    common = [c for c in ra.table.columns if c in rb.table.columns and c not in ra.keys + rb.keys]
    if metrics:
        names = [canonical_metric(m) for m in metrics]
        missing = [m for m in names if m not in common]
        if missing:
            raise SpecError(
                "compare",
                "metrics",
                missing[0],
                "not in both result sets; common: " + ", ".join(common[:20]),
            )
        return names
    names = [m for m in DEFAULT_METRICS if m in common]
    if names:
        return names
    names = [c for c in common if pd.api.types.is_numeric_dtype(ra.table[c]) and c != "seed"]
    if not names:
        raise SpecError("compare", "metrics", f"{ra.name} vs {rb.name}",
                        "the two result sets share no numeric metric")  # fmt: skip
    return names


# --------------------------------------------------------------------------- rendering


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, (float, np.floating)):
        a = abs(float(v))
        return f"{v:.4g}" if a < 1e5 else f"{v:,.0f}"
    return str(v)


def format_comparison(df: pd.DataFrame, fmt: str = "table") -> str:
    """Render compare()'s frame as an aligned table, Markdown or CSV (plus MAPE when measured)."""
    if fmt == "csv":
        return df.to_csv(index=False)
    a, b = df.attrs.get("a", "a"), df.attrs.get("b", "b")
    heads = [c if c not in ("a", "b") else (a if c == "a" else b) for c in df.columns]
    heads = [h if h != "ratio" else "B/A" for h in heads]
    rows = [
        [_fmt(v) if c not in ("ratio", "error_pct") else _pct(v, c) for c, v in r.items()]
        for r in df.to_dict("records")
    ]
    mape = df.attrs.get("mape")
    avg = df.attrs.get("averaged_over")
    note = f"(rows averaged over {', '.join(avg)}: not in both result sets)" if avg else ""
    if fmt == "markdown":
        lines = ["| " + " | ".join(heads) + " |", "|" + "|".join("---" for _ in heads) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        if mape:
            lines += ["", "| metric | MAPE % |", "|---|---|"]
            lines += [f"| {k} | {v:.1f} |" for k, v in mape.items()]
        return "\n".join(lines + ([f"\n{note}"] if note else []))
    if fmt != "table":
        raise SpecError("compare", "format", fmt, "must be table, markdown or csv")
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(heads)
    ]
    line = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths))  # noqa: E731
    lines = [line(heads), line(["-" * w for w in widths]), *(line(r) for r in rows)]
    if mape:
        lines += ["", "MAPE (mean |error| %, simulated vs measured):"]
        lines += [f"  {k:<24} {v:6.1f}" for k, v in mape.items()]
    return "\n".join(lines + ([note] if note else []))


def _pct(v: Any, col: str) -> str:
    f = _num(v)
    if f is None:
        return "-"
    return f"{f:+.1f}%" if col == "error_pct" else f"{f:.3f}"


make_callable(__name__, compare)
