"""The accounting computed without step-long temporaries equals, to the bit, the whole-array
computation it replaced: numpy's pairwise sums repeated over segments, weighted percentiles by
selection, the ITL sample in parts, the energy peak of steps in turn, the time series in
segments."""

from __future__ import annotations

import numpy as np
import pytest

from servesim.accounting import energy, stats, timeseries
from servesim.accounting.latency import itl_parts, itl_samples, itl_stats


@pytest.mark.parametrize("n", [1, 7, 129, 65_536, 65_537, 200_003, 400_000])
def test_pairwise_sum_equals_np_sum(n):
    rng = np.random.default_rng(n)
    x = rng.standard_normal(n) * np.exp(rng.standard_normal(n) * 6)
    assert stats.pairwise_sum(n, lambda a, b: x[a:b]) == float(np.sum(x))


@pytest.mark.parametrize("seed", range(6))
def test_parts_stats_equal_concatenated_sample(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 150_000))
    v = np.round(rng.exponential(0.02, n), int(rng.integers(2, 12))) - (0.01 if seed % 2 else 0)
    w = rng.integers(0, 5, n)
    a, b = sorted(rng.integers(0, n, 2))
    w[a:b] = 0
    if w.sum() == 0:
        w[0] = 1
    parts = stats.Parts([(v[:a], w[:a]), (v[a:b], 0), (v[b:], w[b:])])
    assert stats.parts_stats(parts) == stats.weighted_sample_stats(v, w)
    qs = [0.0, 50.0, 99.0, 99.9, 100.0]
    assert np.array_equal(stats.parts_percentiles(parts, qs), stats.weighted_percentiles(v, w, qs))


def _steps(n_inst: int, rows: int, seed: int, runs: bool = False) -> dict:
    """A synthetic step table: instances step in turn, or interleave in time."""
    rng = np.random.default_rng(seed)
    inst = rng.integers(0, n_inst, rows)
    dur = rng.exponential(0.02, rows)
    start = np.cumsum(rng.exponential(0.01, rows)) if n_inst > 1 else np.cumsum(dur) - dur
    dec = rng.integers(0, 6, rows)
    return {
        "instance": inst.astype(np.int64),
        "start_s": start,
        "duration_s": dur,
        "decode_seqs": dec.astype(np.int32),
        "new_tokens": (dec + rng.integers(0, 3, rows)).astype(np.int32),
        "batch_size": (dec + 1).astype(np.int32),
        "kv_used_blocks": rng.integers(0, 100, rows).astype(np.int32),
        "kv_total_blocks": np.full(rows, 100, dtype=np.int32),
        "waiting": rng.integers(0, 9, rows).astype(np.int32),
        "running": dec.astype(np.int32),
        "steps": (rng.integers(1, 4, rows) if runs else np.ones(rows)).astype(np.int32),
    }


@pytest.mark.parametrize(("n_inst", "runs"), [(1, False), (3, False), (1, True), (2, True)])
def test_itl_stats_equal_whole_sample(n_inst, runs):
    steps = _steps(n_inst, 20_000, n_inst, runs)
    gaps, counts = itl_samples(steps)
    assert itl_stats(steps) == stats.weighted_sample_stats(gaps * 1e3, counts)
    parts = itl_parts(steps)
    assert parts.n == gaps.size and parts.total() == int(counts.sum())


def test_interleaved_peak_equals_sorted_cumsum(monkeypatch):
    monkeypatch.setattr(energy, "_SEGMENT", 1000)
    rng = np.random.default_rng(3)
    dur = rng.exponential(1.0, 5_000) + 1e-3
    gap = np.where(rng.random(5_000) < 0.5, 0.0, rng.exponential(0.5, 5_000))  # ties too
    start, t = np.empty(5_000), 0.0
    for i in range(5_000):
        start[i] = t
        t = t + dur[i] + gap[i]
    assert energy._steps_in_turn(start, dur)
    extra = rng.standard_normal(5_000)
    t = np.concatenate([start + dur, start])
    order = np.argsort(t, kind="stable")
    expect = float(np.max(np.cumsum(np.concatenate([-extra, extra])[order])))
    assert energy._interleaved_peak(5_000, lambda a, b: extra[a:b]) == expect
    assert not energy._steps_in_turn(start, np.where(np.arange(5_000) == 7, 0.0, dur))


class _Raw:
    def __init__(self, steps):
        self.steps = steps
        self.sim_end_s = float(np.max(steps["start_s"] + steps["duration_s"]))
        ids = np.unique(steps["instance"])
        self.instances = {"id": ids, "pool": np.zeros(ids.size, dtype=np.int64)}


@pytest.mark.parametrize("n_inst", [1, 3])
def test_time_series_segments_equal_one_segment(monkeypatch, n_inst):
    raw = _Raw(_steps(n_inst, 6_000, 10 + n_inst))
    monkeypatch.setattr(timeseries, "instance_table", lambda r: _Ids(r.instances["id"]))
    whole = timeseries.time_series(raw, 0.5)
    monkeypatch.setattr(timeseries, "_SEGMENT", 256)
    cut = timeseries.time_series(raw, 0.5)
    assert whole.to_csv() == cut.to_csv()


class _Ids:
    def __init__(self, ids):
        self.ids = np.asarray(ids)
