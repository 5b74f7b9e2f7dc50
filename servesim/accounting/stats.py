"""Summary statistics: mean, median, p90, p95, p99, p99.9 and population std of a sample, plain or
weighted (a compact (value, count) form of a large sample), as ``{prefix}_{stat}`` keys."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import astuple, dataclass
from typing import Any

import numpy as np

# name used in summary keys -> percentile (None: mean / std, handled apart)
STAT_NAMES = ("mean", "median", "p90", "p95", "p99", "p99_9", "std")
_PCTS = {"median": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p99_9": 99.9}


@dataclass(frozen=True, slots=True)
class Stats:
    """The statistics of one sample (None for an empty sample), in summary key order."""

    mean: float | None
    median: float | None
    p90: float | None
    p95: float | None
    p99: float | None
    p99_9: float | None
    std: float | None  # population std (np.std)

    def flat(self, prefix: str) -> dict[str, float | None]:
        """``{prefix}_{stat}`` keys."""
        return {f"{prefix}_{s}": v for s, v in zip(STAT_NAMES, astuple(self))}


def sample_stats(values: np.ndarray) -> Stats:
    """mean, median, p90, p95, p99, p99.9, std of ``values``; all None if empty."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return _pack(None, None, [None] * len(_PCTS))
    return _pack(np.mean(v), np.std(v), np.percentile(v, list(_PCTS.values())))


def stats(values: np.ndarray, prefix: str) -> dict[str, float | None]:
    """:func:`sample_stats` as ``{prefix}_{stat}`` keys."""
    return sample_stats(values).flat(prefix)


def _pack(mean: Any, std: Any, qs: Any) -> Stats:
    out = {"mean": mean, "std": std, **dict(zip(_PCTS, qs))}
    return Stats(**{s: None if out[s] is None else float(out[s]) for s in STAT_NAMES})


def weighted_percentiles(
    values: np.ndarray, weights: np.ndarray, qs: Sequence[float]
) -> np.ndarray:
    """``np.percentile(np.repeat(values, weights), qs)`` (linear method) without expanding."""
    v = np.asarray(values, dtype=float)
    w = np.asarray(weights, dtype=np.int64)
    keep = w > 0
    v, w = v[keep], w[keep]
    if v.size == 0:
        return np.full(len(qs), np.nan)
    order = np.argsort(v, kind="stable")
    v, cw = v[order], np.cumsum(w[order])
    n = int(cw[-1])
    h = (n - 1) * np.asarray(qs, dtype=float) / 100.0
    lo = np.floor(h).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    x_lo = v[np.searchsorted(cw, lo, side="right")]
    x_hi = v[np.searchsorted(cw, hi, side="right")]
    return x_lo + (h - lo) * (x_hi - x_lo)


def weighted_stats(values: np.ndarray, weights: np.ndarray, prefix: str) -> dict[str, float | None]:
    """:func:`stats` of the samples ``np.repeat(values, weights)``, computed on the compact form."""
    return weighted_sample_stats(values, weights).flat(prefix)


def weighted_sample_stats(values: np.ndarray, weights: np.ndarray) -> Stats:
    """:func:`sample_stats` of ``np.repeat(values, weights)``, computed on the compact form."""
    v = np.asarray(values, dtype=float)
    w = np.asarray(weights, dtype=np.int64)
    n = int(w.sum()) if w.size else 0
    if n == 0:
        return _pack(None, None, [None] * len(_PCTS))
    # sums of products by numpy's pairwise sum, not np.dot: BLAS kernels round differently from
    # one CPU to another, and summaries must be the same bytes on every machine
    mean = float(np.sum(v * w) / n)
    std = math.sqrt(max(float(np.sum(w * (v - mean) ** 2)) / n, 0.0))
    return _pack(mean, std, weighted_percentiles(v, w, list(_PCTS.values())))
