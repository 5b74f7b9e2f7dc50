"""The per-instance time series of a run (timeseries.csv)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from servesim.accounting.instances import instance_table
from servesim.accounting.latency import _runs, _step_order_or_none

if TYPE_CHECKING:  # pandas loads on first use: the print-only run never needs it
    import pandas as pd


def time_series(raw: Any, interval_s: float) -> pd.DataFrame:
    """Per instance and time bin of ``interval_s``: steps, busy fraction, mean batch size, KV use,
    queue length, running requests and emitted tokens per second.

    ``busy_fraction`` is the share of the bin the instance spent in steps: a step that crosses a
    bin edge counts in each bin for the part it spent there (so it is <= 1). Batch size, KV use,
    queue and running are means over the steps that start in the bin, weighted by step duration;
    a bin with no step has batch 0, queue 0 and the KV use of the instance's last step before it.
    """
    if not interval_s > 0:
        raise ValueError("interval_s must be > 0")
    import pandas as pd

    steps = raw.steps
    ids = instance_table(raw).ids.tolist()
    end = max(float(raw.sim_end_s), 0.0)
    n_bins = max(int(math.ceil(end / interval_s)), 1)
    cols = ["time_s", "instance", "steps", "busy_fraction", "batch_size", "kv_usage", "waiting",
            "running", "tokens_per_s"]  # fmt: skip
    if not ids:
        return pd.DataFrame(columns=cols)
    order = _step_order_or_none(steps)  # rows by (instance, start): each bin's rows in a run
    agg = _aggregate(steps, order, interval_s, n_bins)
    grid = pd.MultiIndex.from_product([ids, range(n_bins)], names=["instance", "bin"])
    agg = agg.reindex(grid)
    busy = agg["busy"]
    out = pd.DataFrame(index=grid)
    out["steps"] = agg["steps"].fillna(0).astype(np.int64)
    out["busy_fraction"] = _busy_per_bin(steps, order, ids, n_bins, interval_s).ravel() / interval_s
    for c in ("batch_size", "waiting", "running"):
        out[c] = (agg[f"w_{c}"] / busy.where(busy > 0)).fillna(0.0)
    kv = agg["w_kv_usage"] / busy.where(busy > 0)
    out["kv_usage"] = kv.fillna(agg["kv_last"]).groupby(level="instance").ffill().fillna(0.0)
    out["tokens_per_s"] = agg["tokens"].fillna(0.0) / interval_s
    out = out.reset_index()
    out["time_s"] = out["bin"] * interval_s
    return out[cols].reset_index(drop=True)


_STEP_COLS = ("instance", "start_s", "duration_s", "batch_size", "kv_used_blocks",
              "kv_total_blocks", "waiting", "running", "new_tokens")  # fmt: skip
_SEGMENT = 1 << 17  # step rows per aggregated segment (about; cut where a bin ends)


def _rows(order: np.ndarray | None, a: int, b: int) -> Any:
    return slice(a, b) if order is None else order[a:b]


def _bins(steps: Any, rows: Any, interval_s: float, n_bins: int) -> np.ndarray:
    start = np.asarray(steps["start_s"])[rows]
    return np.minimum((start // interval_s).astype(np.int64), n_bins - 1)


def _aggregate(steps: Any, order: np.ndarray | None, interval_s: float, n_bins: int) -> Any:
    """Per (instance, bin): the groupby of the whole step table, done on segments of rows in
    (instance, start) order that end where a bin ends. A group's rows keep their order, and each
    group's sums see the same values in it, so the result is the same, without a frame of every
    step and its derived columns. Rows of several instances that interleave in time are taken
    whole, in table order: pandas' grouped sums can round differently once the rows of other
    groups are moved (seen on pandas 3.1), while cutting a table between groups gives the same
    bits (tests/unit/test_accounting_lean.py)."""
    import pandas as pd

    inst = np.asarray(steps["instance"])
    n = inst.size
    if order is not None:
        return _aggregate_rows(steps, slice(None), interval_s, n_bins)
    parts = []
    a = 0
    while a < n:
        b = min(a + _SEGMENT, n)
        while b < n:  # extend to the end of the (instance, bin) group of row b - 1
            hi = min(b + _SEGMENT, n)
            rows = _rows(order, b - 1, hi)
            key_i = inst[rows]
            key_b = _bins(steps, rows, interval_s, n_bins)
            change = np.flatnonzero((key_i[1:] != key_i[0]) | (key_b[1:] != key_b[0]))
            if change.size:
                b = b + int(change[0])
                break
            b = hi
        parts.append(_aggregate_rows(steps, _rows(order, a, b), interval_s, n_bins))
        a = b
    return pd.concat(parts) if len(parts) > 1 else parts[0]


def _aggregate_rows(steps: Any, rows: Any, interval_s: float, n_bins: int) -> pd.DataFrame:
    import pandas as pd

    df = pd.DataFrame({k: np.asarray(steps[k])[rows] for k in _STEP_COLS})
    df["bin"] = np.minimum((df["start_s"] // interval_s).astype(np.int64), n_bins - 1)
    total = df["kv_total_blocks"].where(df["kv_total_blocks"] > 0)
    df["kv_usage"] = (df["kv_used_blocks"] / total).fillna(0.0)
    w = df["duration_s"]
    for c in ("batch_size", "kv_usage", "waiting", "running"):
        df[f"w_{c}"] = df[c] * w
    return df.groupby(["instance", "bin"], sort=True).agg(
        steps=("start_s", "size"), busy=("duration_s", "sum"), tokens=("new_tokens", "sum"),
        w_batch_size=("w_batch_size", "sum"), w_kv_usage=("w_kv_usage", "sum"),
        w_waiting=("w_waiting", "sum"), w_running=("w_running", "sum"),
        kv_last=("kv_usage", "last"),
    )  # fmt: skip


def _busy_per_bin(
    steps: Any, order: np.ndarray | None, ids: list[int], n_bins: int, interval_s: float
) -> np.ndarray:
    """Seconds each instance spent in steps within each bin, steps split at bin edges:
    shape (instances, bins), instances in ``ids`` order.

    An instance runs one step at a time, so its busy time before t is the summed durations of the
    steps started before t, less the part of the last one that runs past t."""
    edges = np.arange(n_bins + 1, dtype=np.float64) * interval_s
    out = np.zeros((len(ids), n_bins))
    row = {iid: k for k, iid in enumerate(ids)}
    inst = np.asarray(steps["instance"])
    if order is not None:
        inst = inst[order]
    for iid, a, b in _runs(inst):
        rows = _rows(order, a, b)
        # the instance's rows in time order (ties by row), as a stable sort of its starts gives
        start = np.asarray(steps["start_s"], dtype=np.float64)[rows]
        dur = np.asarray(steps["duration_s"], dtype=np.float64)[rows]
        j = np.searchsorted(start, edges, side="left")  # steps started before each edge
        prev = np.maximum(j - 1, 0)
        last_end = np.where(j > 0, start[prev] + dur[prev], 0.0)
        before = _prefix_sums_at(dur, j) - np.maximum(last_end - edges, 0.0)
        out[row[int(iid)]] = np.diff(before)
    return np.maximum(out, 0.0)


def _prefix_sums_at(x: np.ndarray, j: np.ndarray) -> np.ndarray:
    """``np.concatenate(([0.0], np.cumsum(x)))[j]``, the cumsum taken segment by segment, each
    continuing from the previous total (np.cumsum adds in order: the same bits)."""
    out = np.zeros(j.size)
    carry = None
    for a in range(0, x.size, _SEGMENT):
        b = min(a + _SEGMENT, x.size)
        c = np.cumsum(x[a:b] if carry is None else np.concatenate(([carry], x[a:b])))
        if carry is not None:
            c = c[1:]
        hit = (j > a) & (j <= b)
        out[hit] = c[j[hit] - 1 - a]
        carry = c[-1]
    return out
