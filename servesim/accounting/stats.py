"""Summary statistics: mean, median, p90, p95, p99, p99.9 and population std of a sample, plain or
weighted (a compact (value, count) form of a large sample), as ``{prefix}_{stat}`` keys."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
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
    return _compact_percentiles(v[keep], w[keep], qs)


def _compact_percentiles(v: np.ndarray, w: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """weighted_percentiles of positive weights; ``v`` and ``w`` are consumed (sorted in place
    of copies: a few arrays of the sample's size at a time, not a dozen)."""
    if v.size == 0:
        return np.full(len(qs), np.nan)
    order = np.argsort(v, kind="stable")
    v = v[order]
    w = w[order]
    del order
    cw = np.cumsum(w, out=w)
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


# ------------------------------------------------------------- samples held in parts

# numpy sums float64 arrays pairwise (numpy's pairwise_sum: blocks of <= 128 in 8 lanes, longer
# runs split at n // 2 rounded down to a multiple of 8); pairwise_sum repeats the splits above
# _PW_LEAF and lets np.sum do each leaf, so a sum over a sample never held whole gives the
# same bits as np.sum over the whole (tests/unit/test_stats_parts.py checks it on this numpy)
_PW_LEAF = 1 << 16


def pairwise_sum(n: int, leaf: Callable[[int, int], np.ndarray]) -> float:
    """``float(np.sum(x))`` for a float64 ``x`` of length ``n`` given by ``leaf(a, b) = x[a:b]``
    (at most _PW_LEAF elements at a time)."""

    def rec(a: int, m: int) -> Any:
        if m <= _PW_LEAF:
            return np.sum(leaf(a, a + m))
        h = m // 2
        h -= h % 8
        return rec(a, h) + rec(a + h, m - h)

    return 0.0 + float(rec(0, n)) if n else 0.0


class Parts:
    """A weighted sample ``(values, counts)`` held as parts whose concatenation is the sample
    (each part a values array and a counts array or the int 0 for all-zero counts), so its
    statistics need no full-length copy: ``parts_stats`` equals ``weighted_sample_stats`` of
    the concatenation, to the bit."""

    def __init__(self, parts: Sequence[tuple[np.ndarray, Any]]):
        self.parts = [(np.asarray(v, dtype=float), c) for v, c in parts]
        self.n = sum(v.size for v, _ in self.parts)

    def map(self, fn: Callable[[np.ndarray, Any], np.ndarray], a: int, b: int) -> np.ndarray:
        """``fn(values, counts)`` over elements [a, b) of the concatenation, part by part."""
        out, pos = [], 0
        for v, c in self.parts:
            lo, hi = max(a - pos, 0), min(b - pos, v.size)
            if lo < hi:
                out.append(fn(v[lo:hi], c if isinstance(c, int) else c[lo:hi]))
            pos += v.size
        return out[0] if len(out) == 1 else np.concatenate(out)

    def total(self) -> int:
        return sum(int(c.sum()) for _, c in self.parts if not isinstance(c, int))


def parts_percentiles(sample: Parts, qs: Sequence[float]) -> np.ndarray:
    """weighted_percentiles of the concatenated sample, by selection instead of a sort: the value
    at each needed rank of the expanded sample is found 16 bits of its sortable key at a time,
    from weighted histograms taken segment by segment (memory: one segment and 65,536 bins).
    The same values as the sort (the rank-r value does not depend on how ties are ordered), so
    the same interpolation gives the same bits. Not for samples with NaN or -0.0 values."""
    n = sample.total()
    if n == 0:
        return np.full(len(qs), np.nan)
    h = (n - 1) * np.asarray(qs, dtype=float) / 100.0
    lo = np.floor(h).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    ranks = sorted({int(r) for r in lo} | {int(r) for r in hi})
    found = dict(zip(ranks, _select_ranks(sample, ranks)))
    x_lo = np.array([found[int(r)] for r in lo])
    x_hi = np.array([found[int(r)] for r in hi])
    return x_lo + (h - lo) * (x_hi - x_lo)


_SIGN = np.uint64(1 << 63)


def _sort_keys(v: np.ndarray) -> np.ndarray:
    """uint64 keys in the order of the float64 values (negatives: bits flipped)."""
    u = v.view(np.uint64)
    return np.where(u & _SIGN, ~u, u | _SIGN)


def _key_value(key: int) -> float:
    u = np.uint64(key)
    bits = u & ~_SIGN if u & _SIGN else ~u
    return float(np.array([bits], dtype=np.uint64).view(np.float64)[0])


def _select_ranks(sample: Parts, ranks: list[int]) -> list[float]:
    """The value at each 0-based rank of the expanded sample (counts as multiplicities)."""
    state = [(0, r) for r in ranks]  # (key prefix so far, rank left inside that prefix)
    for level in range(4):
        shift = np.uint64(48 - 16 * level)
        prefixes = sorted({p for p, _ in state})
        hist = {p: np.zeros(1 << 16) for p in prefixes}
        for a in range(0, sample.n, _PW_LEAF):
            b = min(a + _PW_LEAF, sample.n)
            for v, c in _segment_pairs(sample, a, b):
                key = _sort_keys(v)
                top = key >> shift >> np.uint64(16) if level else None
                digit = (key >> shift) & np.uint64(0xFFFF)
                for p in prefixes:
                    m = slice(None) if top is None else top == np.uint64(p)
                    hist[p] += np.bincount(digit[m].astype(np.int64), weights=c[m],
                                           minlength=1 << 16)  # fmt: skip
        nxt = []
        for p, r in state:
            cum = np.cumsum(hist[p])  # integer counts in float64: exact below 2**53
            d = int(np.searchsorted(cum, r, side="right"))
            nxt.append(((p << 16) | d, r - (int(cum[d - 1]) if d else 0)))
        state = nxt
    return [_key_value(p) for p, _ in state]


def _segment_pairs(sample: Parts, a: int, b: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(values, float64 counts) of elements [a, b) with a positive count, part by part."""
    out, pos = [], 0
    for v, c in sample.parts:
        lo, hi = max(a - pos, 0), min(b - pos, v.size)
        pos += v.size
        if lo >= hi or (isinstance(c, int) and c <= 0):
            continue
        cc = np.full(hi - lo, float(c)) if isinstance(c, int) else c[lo:hi].astype(np.float64)
        keep = cc > 0
        out.append((np.ascontiguousarray(v[lo:hi][keep]), cc[keep]))
    return out


def parts_stats(sample: Parts) -> Stats:
    """weighted_sample_stats of the concatenated sample, without concatenating it."""
    n = sample.total()
    if n == 0:
        return _pack(None, None, [None] * len(_PCTS))
    mean = float(pairwise_sum(sample.n, lambda a, b: sample.map(lambda v, c: v * c, a, b)) / n)

    def dev(v: np.ndarray, c: Any) -> np.ndarray:
        return c * (v - mean) ** 2

    std = math.sqrt(max(pairwise_sum(sample.n, lambda a, b: sample.map(dev, a, b)) / n, 0.0))
    return _pack(mean, std, parts_percentiles(sample, list(_PCTS.values())))
