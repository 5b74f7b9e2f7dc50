"""Trace columns for the engine without pandas where that is exactly equivalent.

`trace_columns` gives what `traces.load_trace` gives (same arrival floats to the bit, same token
counts, same notes and warnings), as plain numpy columns. A plain Azure CSV (the bundled samples
and the public 2023 traces: an exact header, unquoted cells, digits, naive ISO date-times) is read
with the csv module; anything else, and any cell the fast reader does not accept, goes through
`load_trace` (pandas), so every error message stays the one that path gives. Importing pandas
costs ~0.4 CPU-s, a third of the default `servesim run`.
"""

from __future__ import annotations

import csv
import datetime as _dt
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("servesim.workload")

_AZURE_HEADER = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
# A whole number pandas reads as int64 for sure (18 digits < 2^63).
_DIGITS = re.compile(r"[0-9]{1,18}\Z")
# A naive ISO date-time with at most 9 fraction digits (what pandas parses to the nanosecond).
_STAMP = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[ T]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?\Z"
)
_EPOCH = _dt.date(1970, 1, 1).toordinal()
# datetime64[ns] spans 1677-09-21 .. 2262-04-11: stay well inside it
_YEARS = range(1678, 2262)


class TraceColumns:
    """A trace as columns (the DataFrame of `load_trace` without pandas): numpy arrays, and
    `prefix_hashes` as a list of tuples; `attrs` as the DataFrame's."""

    __slots__ = ("columns", "attrs")

    def __init__(self, columns: dict[str, Any], attrs: dict[str, Any]):
        self.columns = columns
        self.attrs = attrs

    @classmethod
    def from_frame(cls, df: Any) -> TraceColumns:
        cols = {
            k: (df[k].tolist() if k == "prefix_hashes" else df[k].to_numpy()) for k in df.columns
        }
        return cls(cols, dict(df.attrs))

    def __len__(self) -> int:
        return len(self.columns["arrival_s"])

    def __contains__(self, name: str) -> bool:
        return name in self.columns

    def __getitem__(self, name: str) -> Any:
        return self.columns[name]

    def take(self, rows: Any) -> TraceColumns:
        """The rows a slice, a boolean mask or an index array selects."""
        out = {}
        for k, v in self.columns.items():
            if isinstance(v, list) and isinstance(rows, slice):
                v = v[rows]
            elif isinstance(v, list):
                idx = np.flatnonzero(rows) if rows.dtype == bool else rows
                v = [v[i] for i in idx.tolist()]
            else:
                v = v[rows]
            out[k] = v
        return TraceColumns(out, self.attrs)


def trace_columns(path: str | Path, format: str | None = None, **options: Any) -> TraceColumns:
    """`load_trace(path, format, **options)` as columns; the same numbers, notes and errors."""
    from servesim.workload import traces

    p = traces.resolve_path(path)
    fast = None
    if p.is_file():
        fmt = format or traces.infer_format(p)
        if fmt == "azure" and _whole_read(p, options, traces.PREFIX_READ_MIN_BYTES):
            fast = _read_azure_plain(p)
    if fast is not None:
        out = _finish(fast, options)
        if out is not None:
            notes = out.attrs["notes"]
            for note in notes:
                log.warning("%s: %s", p, note)
            return out
    return TraceColumns.from_frame(traces.load_trace(path, format, **options))


def _whole_read(p: Path, options: dict[str, Any], min_bytes: int) -> bool:
    """True when load_trace would read the whole file (it reads a prefix of a big file in
    arrival order when only the first requests are wanted; its notes count those rows only)."""
    if options.get("max_requests") is None:
        return True
    if any(options.get(k) is not None for k in ("start_s", "duration_s", "sample")):
        return True
    return p.stat().st_size < min_bytes


def _read_azure_plain(p: Path) -> dict[str, Any] | None:
    """(arrival_s, prompt, output) of a plain Azure CSV, or None when any part is unusual."""
    try:
        with p.open("r", encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh, quoting=csv.QUOTE_NONE))  # a quote: pandas decides
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    if len(rows) < 2 or tuple(rows[0]) != _AZURE_HEADER:
        return None
    stamps, prompt, output = [], [], []
    for row in rows[1:]:
        if len(row) != 3:
            return None  # a blank line, a short or long row: pandas decides
        ts, ctx, gen = row
        m = _STAMP.match(ts)
        if m is None or not _DIGITS.match(ctx) or not _DIGITS.match(gen):
            return None
        ns = _nanoseconds(m)
        if ns is None:
            return None
        stamps.append(ns)
        prompt.append(int(ctx))
        output.append(int(gen))
    ns_arr = np.array(stamps, dtype=np.int64)
    # the same operations as tracecols._seconds on pandas' datetime64[ns] integers
    arrival = (ns_arr - ns_arr.min()).astype(np.float64) / 1e9
    return {
        "arrival_s": arrival,
        "prompt_tokens": np.array(prompt, dtype=np.int64),
        "output_tokens": np.array(output, dtype=np.int64),
    }


def _nanoseconds(m: re.Match) -> int | None:
    """Nanoseconds since 1970 (UTC) of a matched date-time; None when it is not a real one."""
    y, mo, d, h, mi, s, frac = m.groups()
    if int(y) not in _YEARS or int(h) > 23 or int(mi) > 59 or int(s) > 59:
        return None
    try:
        day = _dt.date(int(y), int(mo), int(d)).toordinal() - _EPOCH
    except ValueError:
        return None
    sub = int(frac.ljust(9, "0")) if frac else 0
    return ((day * 86400 + int(h) * 3600 + int(mi) * 60 + int(s)) * 1_000_000_000) + sub


def _finish(cols: dict[str, Any], options: dict[str, Any]) -> TraceColumns | None:
    """traces._finish and traces._apply_options on columns (the same float operations in the
    same order); None when an option is out of range (load_trace reports it)."""
    speedup = options.get("speedup", 1.0)
    start_s, duration_s = options.get("start_s"), options.get("duration_s")
    sample, seed = options.get("sample"), options.get("seed", 0)
    if not speedup > 0:
        return None
    notes: list[str] = []
    n = len(cols["arrival_s"])
    cols = {
        **cols,
        "session_id": np.full(n, -1, dtype=np.int64),
        "prefix_hashes": [()] * n,
        "priority": np.zeros(n, dtype=np.int64),
        "ttft_slo_ms": np.full(n, np.nan),
    }
    t = TraceColumns(cols, {})
    arr = t["arrival_s"]
    if np.any(np.diff(arr) < 0):
        notes.append("requests were not in arrival order; sorted them")
        t = t.take(np.argsort(arr, kind="stable"))
    t.columns["arrival_s"] = t["arrival_s"] - t["arrival_s"][0]
    for col, what in (("output_tokens", "output"), ("prompt_tokens", "prompt")):
        zero = t[col] == 0
        if zero.any():
            # Every served request emits at least one token (the one that ends it).
            notes.append(f"{int(zero.sum())} requests had 0 {what} tokens; counted as 1")
            t.columns[col] = np.where(zero, 1, t[col])
    arr = t["arrival_s"]
    if start_s is not None or duration_s is not None:
        lo = start_s or 0.0
        hi = lo + duration_s if duration_s is not None else np.inf
        keep = (arr >= lo) & (arr < hi)
        if not keep.any():
            return None
        t = t.take(keep)
    if sample is not None:
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0x7472]))
        keep = rng.random(len(t)) < sample
        if not keep.any():
            return None
        t = t.take(keep)
    t.columns["arrival_s"] = (t["arrival_s"] - t["arrival_s"][0]) / speedup
    for col, cap in (("prompt_tokens", options.get("max_input")),
                     ("output_tokens", options.get("max_output"))):  # fmt: skip
        if cap is not None:
            if type(cap) is not int:
                return None  # pandas' casting rules decide
            over = t[col] > cap
            if over.any():
                notes.append(f"clipped {int(over.sum())} {col} values to {cap}")
                t.columns[col] = np.where(over, cap, t[col])
    t.attrs.update(notes=notes, format="azure", hash_block_tokens=16)
    return t
