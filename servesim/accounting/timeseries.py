"""The per-instance time series of a run (timeseries.csv)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from servesim.accounting.instances import instance_table

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
    df = pd.DataFrame({k: np.asarray(steps[k]) for k in (
        "instance", "start_s", "duration_s", "batch_size", "kv_used_blocks", "kv_total_blocks",
        "waiting", "running", "new_tokens")})  # fmt: skip
    df["bin"] = np.minimum((df["start_s"] // interval_s).astype(np.int64), n_bins - 1)
    total = df["kv_total_blocks"].where(df["kv_total_blocks"] > 0)
    df["kv_usage"] = (df["kv_used_blocks"] / total).fillna(0.0)
    w = df["duration_s"]
    for c in ("batch_size", "kv_usage", "waiting", "running"):
        df[f"w_{c}"] = df[c] * w
    agg = df.groupby(["instance", "bin"], sort=True).agg(
        steps=("start_s", "size"), busy=("duration_s", "sum"), tokens=("new_tokens", "sum"),
        w_batch_size=("w_batch_size", "sum"), w_kv_usage=("w_kv_usage", "sum"),
        w_waiting=("w_waiting", "sum"), w_running=("w_running", "sum"),
        kv_last=("kv_usage", "last"),
    )  # fmt: skip
    grid = pd.MultiIndex.from_product([ids, range(n_bins)], names=["instance", "bin"])
    agg = agg.reindex(grid)
    busy = agg["busy"]
    out = pd.DataFrame(index=grid)
    out["steps"] = agg["steps"].fillna(0).astype(np.int64)
    out["busy_fraction"] = _busy_per_bin(df, ids, n_bins, interval_s).ravel() / interval_s
    for c in ("batch_size", "waiting", "running"):
        out[c] = (agg[f"w_{c}"] / busy.where(busy > 0)).fillna(0.0)
    kv = agg["w_kv_usage"] / busy.where(busy > 0)
    out["kv_usage"] = kv.fillna(agg["kv_last"]).groupby(level="instance").ffill().fillna(0.0)
    out["tokens_per_s"] = agg["tokens"].fillna(0.0) / interval_s
    out = out.reset_index()
    out["time_s"] = out["bin"] * interval_s
    return out[cols].reset_index(drop=True)


def _busy_per_bin(df: pd.DataFrame, ids: list[int], n_bins: int, interval_s: float) -> np.ndarray:
    """Seconds each instance spent in steps within each bin, steps split at bin edges:
    shape (instances, bins), instances in ``ids`` order.

    An instance runs one step at a time, so its busy time before t is the summed durations of the
    steps started before t, less the part of the last one that runs past t."""
    edges = np.arange(n_bins + 1, dtype=np.float64) * interval_s
    out = np.zeros((len(ids), n_bins))
    row = {iid: k for k, iid in enumerate(ids)}
    for iid, g in df.groupby("instance", sort=True):
        start = g["start_s"].to_numpy()
        dur = g["duration_s"].to_numpy()
        order = np.argsort(start, kind="stable")
        start, dur = start[order], dur[order]
        cum = np.concatenate(([0.0], np.cumsum(dur)))
        j = np.searchsorted(start, edges, side="left")  # steps started before each edge
        prev = np.maximum(j - 1, 0)
        last_end = np.where(j > 0, start[prev] + dur[prev], 0.0)
        before = cum[j] - np.maximum(last_end - edges, 0.0)
        out[row[int(iid)]] = np.diff(before)
    return np.maximum(out, 0.0)
