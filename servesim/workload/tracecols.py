"""The columns of a trace file, read and checked: whole numbers, times, per-request targets,
prefix-hash lists. Each check reports the first bad cell by file line and column (a SpecError).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from servesim.specs.common import SpecError

if TYPE_CHECKING:  # pandas loads on first use: the engine reads plain traces without it
    import pandas as pd


def _require_header(df: pd.DataFrame, cols: tuple[str, ...], p: Path, hint: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise SpecError(
            str(p), "header", ",".join(df.columns), f"missing column {missing[0]}; {hint}"
        )


def _short(exc: Exception) -> str:
    return " ".join(str(exc).split())[:200]


# Whole-number columns must fit int64 exactly as floats compare: below 2^63.
_INT64_END = 2.0**63


def _numeric(raw: pd.Series) -> pd.Series:
    """Numbers of a column as float64 (NaN where a cell is not a number: text, a list, a bool)."""
    import pandas as pd

    if raw.dtype == object:
        raw = raw.map(lambda v: v if isinstance(v, (int, float, str)) and not isinstance(v, bool)
                      else None)  # fmt: skip
    elif raw.dtype == bool:
        raw = pd.Series(np.nan, index=raw.index)
    return pd.to_numeric(raw, errors="coerce").astype(np.float64)


def _ints(df: pd.DataFrame, col: str, p: Path, line0: int = 2) -> np.ndarray:
    """A column of non-negative whole numbers below 2^63; the first bad cell is reported by file
    line (a value past int64 would wrap to a negative count)."""
    raw = df[col]
    if raw.dtype.kind == "i":
        bad = (raw < 0).to_numpy()
    elif raw.dtype.kind == "u":
        bad = (raw > np.iinfo(np.int64).max).to_numpy()
    else:
        vals = _numeric(raw).to_numpy()
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(vals) | (vals < 0) | (vals >= _INT64_END) | (vals != np.floor(vals))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise SpecError(
            str(p),
            f"line {i + line0}, column {col}",
            str(raw.iloc[i]),
            "must be a whole number >= 0 and < 2^63",
        )
    if raw.dtype.kind in "iu":
        return raw.to_numpy(dtype=np.int64)  # exact, also past 2^53
    return vals.astype(np.int64)


def _targets(df: pd.DataFrame, col: str, p: Path, line0: int = 2) -> np.ndarray:
    """Per-request TTFT targets in ms: a number > 0, or an empty cell (the config's target)."""
    raw = df[col]
    vals = _numeric(raw).to_numpy(dtype=np.float64)
    empty = raw.isna().to_numpy()
    with np.errstate(invalid="ignore"):
        bad = ~empty & (~np.isfinite(vals) | (vals <= 0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise SpecError(
            str(p), f"line {i + line0}, column {col}", str(raw.iloc[i]), "must be a number > 0 (ms)"
        )
    return vals


def _seconds(df: pd.DataFrame, col: str, p: Path, unit: str, line0: int = 2) -> np.ndarray:
    import pandas as pd

    raw = df[col]
    if unit == "datetime":
        ts = pd.to_datetime(raw.astype(str), format="ISO8601", errors="coerce", utc=True)
        bad = ts.isna().to_numpy()
        what = "must be a date-time like 2023-11-16 18:15:46.6805900"
        ns = ts.dt.as_unit("ns").array.asi8  # pandas may infer us or ns resolution
        values = None if bad.any() else (ns - ns.min()).astype(np.float64) / 1e9
    else:
        num = _numeric(raw)
        bad = ~np.isfinite(num.to_numpy()) | (num < 0).to_numpy()
        what = f"must be a finite number >= 0 (time in {unit})"
        scale = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}[unit]
        # rebase before scaling: integer ms stay exact
        values = None if bad.any() else (num.to_numpy() - num.min()).astype(np.float64) * scale
    if values is None:
        i = int(np.flatnonzero(bad)[0])
        raise SpecError(str(p), f"line {i + line0}, column {col}", str(raw.iloc[i]), what)
    return values


def _require(df: pd.DataFrame, cols: tuple[str, ...], p: Path) -> None:
    for c in cols:
        if c not in df.columns:
            raise SpecError(
                str(p),
                f"key {c}",
                ",".join(map(str, df.columns)),
                f"missing in the records; expected {', '.join(cols)}",
            )


def _hash_tuples(col: pd.Series, p: Path, line0: int = 1) -> list[tuple[int, ...]]:
    """Prefix block ids: per row a list of integers in int64 (or nothing)."""
    out = []
    for i, v in enumerate(col.tolist()):
        if isinstance(v, list) and all(_is_hash_id(h) for h in v):
            out.append(tuple(v))
        elif v is None or (isinstance(v, float) and np.isnan(v)):
            out.append(())
        else:
            raise SpecError(
                str(p), f"line {i + line0}, key {col.name}", v, "must be a list of integers"
            )
    return out


def _is_hash_id(h: Any) -> bool:
    return isinstance(h, int) and not isinstance(h, bool) and -(2**63) <= h < 2**63


def _csv_hashes(col: pd.Series, p: Path) -> pd.Series:
    """A CSV cell holds the ids separated by spaces or semicolons; anything else is an error
    naming the line."""
    import pandas as pd

    def parse(i: int, cell: Any) -> list[int]:
        out = []
        for tok in str(cell).replace(";", " ").split():
            try:
                out.append(int(tok, 10))
            except ValueError:
                raise SpecError(str(p), f"line {i + 2}, column {col.name}", tok,
                                "prefix ids must be integers separated by spaces or ;") from None  # fmt: skip
        return out

    # a column of single ids with blanks is read as floats (5 -> 5.0): whole floats are ids
    cells = [
        "" if c is None or (isinstance(c, float) and np.isnan(c))
        else str(int(c)) if isinstance(c, float) and c.is_integer() and abs(c) < 2**63
        else str(c)
        for c in col.tolist()
    ]  # fmt: skip
    return pd.Series([parse(i, c) for i, c in enumerate(cells)], name=col.name, dtype=object)
