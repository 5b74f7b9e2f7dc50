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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from servesim._callable import make_callable
from servesim._files import is_hidden, read_json, read_table
from servesim.specs.common import SpecError

CONTENT_KEYS = ("model", "isl", "osl", "rate", "conc", "tp")
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


def _bench_rows(path: Path) -> tuple[list[dict], bool]:
    """The rows of one benchmark file (several when --append-result added lines), keyed by their
    content (content_keys) with the file-name pattern filling what the content lacks."""
    from servesim.studies.bench_output import read_results

    try:
        objs = read_results(path)
    except (OSError, UnicodeDecodeError):
        raise SpecError(str(path), "", path.name, "cannot be read") from None
    rows, measured = [], []
    for data in objs:
        if not isinstance(data, dict) or not any(is_metric(k) for k in data):
            raise SpecError(
                str(path), "", path.name,
                "not a benchmark result (a JSON object with output_throughput, mean_ttft_ms, ...)",
            )  # fmt: skip
        row = {k: v for k, v in data.items() if _is_number(v) and k not in CONTENT_KEYS}
        derived: set[str] = set()
        keys = content_keys(data, derived)
        m = FILE_KEYS.search(path.stem)
        if m:  # the file name's keys beat lengths only derived from token totals
            for k, v in m.groupdict().items():
                if k not in keys or k in derived:
                    keys[k] = int(v)
        row.update(keys)
        row["config"] = path.stem
        rows.append(row)
        measured.append(not ("servesim" in data or data.get("backend") == "servesim"))
    return rows, all(measured)


def content_keys(data: Mapping[str, Any], derived: set[str] | None = None) -> dict[str, Any]:
    """What a vLLM benchmark result says about its config, vLLM's keys first:
    model (model_id, canonical catalog id when the catalog knows it), isl/osl (--metadata isl=
    / input_len=, the servesim block, else mean tokens per prompt), rate (request_rate; inf),
    conc (max_concurrency; "none"), tp (--metadata tp= / tensor_parallel_size=, the servesim
    block). Keys it cannot tell are left out."""
    meta = {k: data[k] for k in data if isinstance(k, str)}
    sim = data.get("servesim") if isinstance(data.get("servesim"), Mapping) else {}
    out: dict[str, Any] = {}
    model = meta.get("model_id") or sim.get("model") or meta.get("model")
    if model:
        out["model"] = canonical_model(str(model))
    n = _num(meta.get("num_prompts")) or _num(meta.get("completed"))
    for key, names, total in (
        ("isl", ("isl", "input_len", "random_input_len"), "total_input_tokens"),
        ("osl", ("osl", "output_len", "random_output_len"), "total_output_tokens"),
    ):
        given = next((meta[k] for k in names if meta.get(k) not in (None, "")), None)
        given = given if given is not None else sim.get(key)
        if given is not None and _num(given) is not None:
            out[key] = _key_value(given)
        elif n and _num(meta.get(total)) is not None:
            out[key] = int(round(float(meta[total]) / n))  # mean tokens per request
            if derived is not None:
                derived.add(key)
    if "request_rate" in meta:
        out["rate"] = _rate(meta["request_rate"])
    if "max_concurrency" in meta:
        conc = meta["max_concurrency"]
        out["conc"] = "none" if conc in (None, "", "None") else _key_value(conc)
    tp = next((meta[k] for k in ("tp", "tensor_parallel_size", "tensor-parallel-size")
               if meta.get(k) not in (None, "")), None)  # fmt: skip
    if tp is None:
        pools = sim.get("pools") or []
        if len(pools) == 1:
            tp = (pools[0].get("parallelism") or {}).get("tp", 1)
    if tp is not None and _num(tp) is not None:
        out["tp"] = _key_value(tp)
    return out


def _rate(v: Any) -> Any:
    f = _num(v) if not (isinstance(v, str) and v.strip().lower() == "inf") else math.inf
    return "inf" if f is None or math.isinf(f) else _key_value(f)


def canonical_model(name: str) -> str:
    """The catalog id a model name resolves to (aliases, HF spellings), else its last path
    part in lower case: `meta-llama/Meta-Llama-3.1-8B-Instruct` and `llama-3.1-8b` are one."""
    from servesim.specs.hardware import resolve_catalog
    from servesim.specs.hf import resolve_hf

    def lookup(text: str) -> Path | None:
        try:
            return resolve_catalog("model", text)
        except SpecError:
            return None

    try:
        found = lookup(name) or (resolve_hf(name, lookup) if "/" in name else None)
    except (SpecError, OSError):
        found = None
    if found is not None and found.suffix in (".yaml", ".yml"):
        return found.stem
    return name.rstrip("/").split("/")[-1].lower()


def _present_keys(table: pd.DataFrame) -> list[str]:
    """The content keys every row of a set of benchmark files has (config: the file stem)."""
    keys = [k for k in CONTENT_KEYS if k in table and table[k].notna().all()]
    return keys or ["config"]


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
        from servesim.studies.sweep import load_table

        table, keys = load_table(p)
        keys = [*keys, "seed"] if "seed" in table else keys
        table = table.drop(columns=[c for c in ("point", "error") if c in table])
    elif p.is_dir():
        table, keys, is_measured = _load_dir(p)
    elif p.suffix == ".json":
        rows, is_measured = _bench_rows(p)
        table = pd.DataFrame(rows)
        keys = _present_keys(table)
    elif p.suffix in (".csv", ".parquet"):
        table = read_table(p)
        sweep_meta = p.parent / "sweep.json"
        if sweep_meta.is_file():
            from servesim.studies.sweep import load_table

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
        parts = [_bench_rows(f) for f in files]
        table = pd.DataFrame([r for rows, _ in parts for r in rows])
        return table, _present_keys(table), all(flag for _, flag in parts)
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
    by: Sequence[str] | str | None = None,
) -> pd.DataFrame:
    """One row per (matching config, metric): values from A and B, ratio B/A.

    Rows match on the config keys both sets have (for benchmark files: model, isl, osl, rate,
    conc, tp read from their content, see content_keys); ``by`` names the keys to match on
    instead (aliases allowed: concurrency, max_concurrency, request_rate, ...; "" or [] compares
    two single results directly). Two single results whose keys differ are compared directly,
    the differing keys listed in ``frame.attrs["differs"]``.

    Example (a real `vllm bench serve` folder against a simulated bench folder):
        >>> df = compare("measured/", "simulated/")  # doctest: +SKIP
        >>> df[df.metric == "output_throughput"][["conc", "a", "b", "error_pct"]]  # doctest: +SKIP
        >>> df.attrs["mape"]["mean_ttft_ms"]  # doctest: +SKIP

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
    merged, keys = _match(ra, rb, _by_keys(by))
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
        a=ra.name,
        b=rb.name,
        keys=keys,
        averaged_over=merged.attrs.get("averaged_over", []),
        differs=merged.attrs.get("differs", []),
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


def _by_keys(by: Sequence[str] | str | None) -> list[str] | None:
    if by is None:
        return None
    items = [t.strip() for t in by.split(",")] if isinstance(by, str) else [str(t) for t in by]
    return [KEY_ALIASES.get(t, t) for t in items if t and t.lower() != "none"]


def _match(
    ra: ResultSet, rb: ResultSet, by: list[str] | None = None
) -> tuple[pd.DataFrame, list[str]]:
    order = {
        k: i
        for i, k in enumerate(("model", "hardware", "tp", "pp", "ep", "isl", "osl", "conc", "rate"))
    }
    ta, tb = ra.table, rb.table
    if by:
        for side, t in (("A", ta), ("B", tb)):
            missing = [k for k in by if k not in t.columns]
            if missing:
                raise SpecError("compare", "by", missing[0], f"not a column of {side}; "
                                f"it has: {', '.join(map(str, t.columns[:20]))}")  # fmt: skip
        keys = list(by)
    else:
        keys = sorted((k for k in ra.keys if k in rb.keys), key=lambda k: order.get(k, len(order)))
        keys = [k for k in keys if k != "config" or not set(CONTENT_KEYS) & set(ra.keys)]
    single = len(ta) == 1 and len(tb) == 1
    if single and (not keys or _differs(ta, tb, keys)):
        # two single results named on the command line: compare them, say what differs
        differs = _differs(ta, tb, keys) if keys else []
        ta, tb = ta.assign(config=ra.name), tb.assign(config=ra.name)
        keys = ["config"]
    elif not keys:
        raise SpecError(
            "compare",
            "keys",
            f"{ra.keys} vs {rb.keys}",
            "the two result sets share no config columns to match rows on (use --by)",
        )
    else:
        differs = []
    averaged = sorted(
        {k for r, t in ((ra, ta), (rb, tb)) for k in r.keys if k not in keys and t[k].nunique() > 1}
    )
    ta, tb = _aggregate(ta, keys), _aggregate(tb, keys)
    for k in keys:  # "8" and 8 match
        ta[k], tb[k] = ta[k].map(_key_value), tb[k].map(_key_value)
    merged = ta.merge(tb, on=keys, how="inner", suffixes=("__a", "__b"))
    if merged.empty:
        seen = lambda t: "; ".join(  # noqa: E731
            ",".join(f"{k}={r[k]}" for k in keys) for r in t[keys].head(3).to_dict("records")
        )
        raise SpecError("compare", "keys", ", ".join(keys),
                        f"no config appears in both result sets (A: {seen(ta)}; B: {seen(tb)}); "
                        "choose the keys to match with --by")  # fmt: skip
    merged = merged.sort_values(keys, kind="stable").reset_index(drop=True)
    merged.attrs["averaged_over"] = averaged
    merged.attrs["differs"] = differs
    return merged, keys


def _differs(ta: pd.DataFrame, tb: pd.DataFrame, keys: list[str]) -> list[str]:
    """Keys whose single values differ between two one-row tables ("8" and 8 are equal)."""

    def same(x: Any, y: Any) -> bool:
        if pd.isna(x) and pd.isna(y):
            return True
        return _key_value(x) == _key_value(y)

    return [k for k in keys if not same(ta[k].iloc[0], tb[k].iloc[0])]


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
    differs = df.attrs.get("differs")
    if differs:
        note = (note + "\n" if note else "") + f"(A and B differ in {', '.join(differs)})"
    if fmt == "markdown":
        lines = ["| " + " | ".join(heads) + " |", "|" + "|".join("---" for _ in heads) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        if mape:
            lines += ["", "| metric | MAPE % |", "|---|---|"]
            lines += [f"| {k} | {v:.1f} |" for k, v in mape.items()]
        return "\n".join(lines + ([f"\n{note}"] if note else []))
    if fmt != "table":
        raise SpecError("compare", "format", fmt, "must be table, markdown or csv")
    from servesim._progress import table

    lines = [table([dict(zip(heads, r)) for r in rows], heads)]
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
