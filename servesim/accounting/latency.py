"""Per-request latencies, ITL samples from the step log, SLO targets and goodput.

Everything here is a pure function of a RawRun (docs/internals.md, "sim (engine)") and the run
config; nothing is simulated. Definitions follow vLLM's benchmark_serving (vllm/benchmarks/serve.py,
``calculate_metrics``): TTFT, TPOT = (E2E - TTFT) / (output - 1) over requests with more than one
output token, ITL = gaps between a request's successive tokens, E2EL = finish - arrival; mean,
median, population std (``np.std``) and linear-interpolated percentiles (``np.percentile``).
docs/metrics.md lists every key.

ITL without per-token lists: a decoding request takes part in every decode step of its instance,
so each decode step stands for ``decode_seqs`` ITL samples: for requests that also decoded in the
instance's previous decode step, the gap between the two step ends (prefill-only steps of the
prefill-first `vllm` policy fall inside it); for requests whose first token came from a prefill
that finished since, the gap from that prefill step's end. Percentiles are weighted percentiles
over these (gap, count) pairs, equal to ``np.percentile`` over the expanded samples. This misses
the long gap a preempted request sees while it waits to be recomputed (tails are optimistic under
preemption), and on a decode instance of a prefill/decode split the first decode gap is measured
from the previous step there, not from the first token on the prefill instance. With speculative
decoding a step may emit several tokens per request and still gives one ITL sample per request
(one streamed chunk); the step log's ``spec_tokens`` column keeps the first-token count exact.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from servesim.accounting.stats import Parts, Stats, parts_stats
from servesim.accounting.summary import SloTarget

# SLO percentile names (run config) -> summary stat name
_SLO_STAT = {"mean": "mean", "p50": "median", "median": "median", "p90": "p90", "p95": "p95",
             "p99": "p99", "p99.9": "p99_9", "p99_9": "p99_9"}  # fmt: skip
_SLO_METRICS = ("ttft_ms", "tpot_ms", "e2el_ms", "itl_ms")


def _col(table: Mapping[str, np.ndarray], name: str, dtype: Any = float) -> np.ndarray:
    return np.asarray(table[name], dtype=dtype)


def _completed_mask(req: Mapping[str, np.ndarray]) -> np.ndarray:
    return np.isfinite(_col(req, "finish_s"))


def step_order(steps: Mapping[str, np.ndarray]) -> np.ndarray:
    """Row order by (instance, start_s, original row): each instance's steps in time order."""
    inst = _col(steps, "instance", np.int64)
    start = _col(steps, "start_s")
    return np.lexsort((np.arange(inst.size), start, inst))


def _step_order_or_none(steps: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """step_order, or None when it is the identity (one instance, or rows already in (instance,
    start) order): the columns are then read in place, not copied through the order."""
    inst = _col(steps, "instance", np.int64)
    start = _col(steps, "start_s")
    if inst.size < 2:
        return None
    d_inst = np.diff(inst)
    d_start = np.diff(start)
    if np.all((d_inst > 0) | ((d_inst == 0) & (d_start >= 0))):
        return None
    del d_inst, d_start
    return step_order(steps)


def iterations(steps: Mapping[str, np.ndarray]) -> np.ndarray:
    """Engine iterations per step row: the ``steps`` column of a "runs" step log, else 1 each."""
    if "steps" in steps:
        return np.maximum(_col(steps, "steps", np.int64), 1)
    return np.ones(len(steps["instance"]), dtype=np.int64)


def itl_samples(steps: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(gap_s, count) pairs: every decode iteration gives ``decode_seqs`` ITL samples.

    A request decoding in a step got its previous token either in the instance's previous decode
    step (the gap is the difference of the two step ends; prefill-only steps in between, as under
    the prefill-first `vllm` policy, are inside the gap) or, for its first decode, in the step that
    finished its prefill (the gap runs from that step's end). First tokens are counted per step
    as ``new_tokens - decode_seqs``. A "runs" row of k merged decode iterations is split into k
    equal iterations (their lengths differ only by the slowly growing context).
    """
    parts = itl_parts(steps)
    gaps = np.concatenate([v for v, _ in parts.parts])
    counts = np.concatenate([np.zeros(v.size, dtype=np.int64) if isinstance(c, int) else c
                             for v, c in parts.parts])  # fmt: skip
    return gaps, counts


def itl_parts(steps: Mapping[str, np.ndarray], scale: float | None = None) -> Parts:
    """itl_samples as a Parts sample (join gaps, continuing gaps, the later iterations of "runs"
    rows), gaps multiplied by ``scale`` if given: the same values, without the full-length
    concatenations (a million-request step log has ~5M rows)."""
    if len(steps["instance"]) == 0:
        return Parts([(np.zeros(0), np.zeros(0, dtype=np.int64))])
    order = _step_order_or_none(steps)

    def col(name: str, dtype: Any = float) -> np.ndarray:
        c = _col(steps, name, dtype)
        return c if order is None else c[order]

    start, dur = col("start_s"), col("duration_s")
    single = "steps" not in steps or bool(np.all(np.asarray(steps["steps"]) <= 1))
    k = None if single else iterations(steps)
    if k is not None and order is not None:
        k = k[order]
    n = col("decode_seqs", None)  # int32 in a step table: exact in the int64 sums below
    if n.dtype.kind not in "iu":
        n = n.astype(np.int64)
    first_tokens = col("new_tokens", np.int64)
    if "spec_tokens" in steps:  # speculative steps emit extra tokens per sequence, one ITL sample
        first_tokens = first_tokens - col("spec_tokens", np.int64)
    first_tokens = first_tokens - (n if single else n * k)
    np.maximum(first_tokens, 0, out=first_tokens)
    end = start + dur
    per_iter = dur if single else dur / k  # x / 1 == x: the same values, no copy
    first_end = end if single else start + per_iter  # end of a row's first iteration
    prev_dec, next_dec = _decode_neighbours(col("instance", np.int64), n > 0)
    # requests whose first token came at row j decode next at row next_dec[j]
    j_rows = np.flatnonzero((first_tokens > 0) & (next_dec >= 0))
    nxt = next_dec[j_rows]
    del next_dec
    join_gap = first_end[nxt] - end[j_rows]
    join_n = first_tokens[j_rows]
    del first_tokens, j_rows
    cont = np.bincount(nxt, weights=join_n, minlength=n.size).astype(np.int64)  # joined
    del nxt
    np.subtract(n, cont, out=cont)
    np.maximum(cont, 0, out=cont)
    # the others decoded in the previous decode row (or, for an instance's first, none: own time)
    no_prev = prev_dec < 0
    np.maximum(prev_dec, 0, out=prev_dec)
    cont_gap = end[prev_dec]
    del prev_dec
    np.subtract(first_end, cont_gap, out=cont_gap)
    cont_gap[no_prev] = per_iter[no_prev]
    del no_prev, end, first_end
    later = 0 if single else np.asarray(n, dtype=np.int64) * (k - 1)
    parts = [(join_gap, join_n), (cont_gap, cont), (per_iter, later)]
    if scale is not None:
        # in place on the fresh arrays; a part of zero counts is left unscaled: its terms in every
        # sum are v * 0 and 0 * (v - mean) ** 2, +0.0 alike for any finite non-negative duration
        for v, _c in parts[:2]:
            np.multiply(v, scale, out=v)
        if not isinstance(later, int):
            parts[2] = (per_iter * scale, later)
    return Parts(parts)


def itl_stats(steps: Mapping[str, np.ndarray]) -> Stats:
    """ITL statistics in ms: ``weighted_sample_stats(gaps * 1e3, counts)`` of itl_samples."""
    return parts_stats(itl_parts(steps, 1e3))


def _decode_neighbours(inst: np.ndarray, is_dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows sorted by (instance, time): index of the previous and of the next row of the same
    instance with decodes (-1 if none); int32 indices below 2**31 rows (the same values)."""
    size = inst.size
    itype = np.int32 if size < 2**31 - 1 else np.int64
    cut = np.flatnonzero(inst[1:] != inst[:-1]) + 1
    no_dec = ~is_dec
    last = np.arange(size, dtype=itype)
    last[no_dec] = -1
    np.maximum.accumulate(last, out=last)
    prev = np.empty(size, dtype=itype)
    prev[0] = -1
    prev[1:] = last[:-1]
    del last
    if cut.size:  # a row's previous decode row must be of its own instance
        group_start = np.zeros(size, dtype=itype)
        group_start[cut] = cut
        np.maximum.accumulate(group_start, out=group_start)
        prev[prev < group_start] = -1
        del group_start
    nxt_all = np.arange(size, dtype=itype)
    nxt_all[no_dec] = size
    del no_dec
    rev = nxt_all[::-1]
    np.minimum.accumulate(rev, out=rev)
    nxt = np.empty(size, dtype=itype)
    nxt[:-1] = nxt_all[1:]
    nxt[-1] = size
    del nxt_all, rev
    if cut.size:
        group_end = np.full(size, size, dtype=itype)
        group_end[cut - 1] = cut
        rev = group_end[::-1]
        np.minimum.accumulate(rev, out=rev)
        nxt[nxt >= group_end] = -1
    else:
        nxt[nxt >= size] = -1
    return prev, nxt


def _iteration_ends(steps: Mapping[str, np.ndarray], order: np.ndarray) -> np.ndarray:
    """End time of every engine iteration, rows in ``order`` (runs rows split evenly)."""
    start = _col(steps, "start_s")[order]
    dur = _col(steps, "duration_s")[order]
    k = iterations(steps)[order]
    if np.all(k == 1):
        return start + dur
    row = np.repeat(np.arange(k.size), k)
    j = np.arange(row.size) - np.repeat(np.cumsum(k) - k, k) + 1
    return start[row] + dur[row] * j / k[row]


def request_itls(raw: Any) -> list[list[float]]:
    """Per-request token gaps (seconds) rebuilt from the step log, for benchmark JSON's ``itls``.

    A decoding request is in every decode step of its instance, so its tokens after the first come
    at the ends of the last ``output - 1`` decode steps of its instance that end no later than its
    finish. Unfinished requests get an empty list. Approximate under preemption (see module doc).
    """
    return [gaps.tolist() for gaps in iter_request_itls(raw)]


def iter_request_itls(raw: Any) -> Iterator[np.ndarray]:
    """request_itls one request at a time (numpy arrays), so a million requests' gaps are never
    held at once (Result.to_dir streams them into benchmark.json)."""
    req, steps = raw.requests, raw.steps
    n = len(req["request_id"])
    empty = np.zeros(0)
    if len(steps["instance"]) == 0:
        for _ in range(n):
            yield empty
        return
    order = step_order(steps)
    order = order[_col(steps, "decode_seqs", np.int64)[order] > 0]
    s_inst = np.repeat(_col(steps, "instance", np.int64)[order], iterations(steps)[order])
    s_end = _iteration_ends(steps, order)
    bounds = {int(i): (a, b) for i, a, b in _runs(s_inst)}
    inst = _col(req, "instance", np.int64)
    first = _col(req, "first_token_s")
    finish = _col(req, "finish_s")
    outputs = _col(req, "output_tokens", np.int64)
    spec = "spec_tokens" in steps
    for r in range(n):
        k = int(outputs[r]) - 1
        if k <= 0 or not math.isfinite(finish[r]) or int(inst[r]) not in bounds:
            yield empty
            continue
        a, b = bounds[int(inst[r])]
        ends = s_end[a:b]
        # float tolerance: the engine's clock and start + duration may differ in the last bit
        j = int(np.searchsorted(ends, finish[r] + 1e-9, side="right"))
        # speculative steps emit a varying number of tokens: one gap per step since the first
        i = int(np.searchsorted(ends, first[r] + 1e-9, side="right")) if spec else max(j - k, 0)
        token_times = np.concatenate(([first[r]], ends[i:j]))
        yield np.diff(token_times)


def _runs(sorted_keys: np.ndarray) -> Iterable[tuple[int, int, int]]:
    """(key, start, stop) of each run of equal values in a sorted array."""
    if sorted_keys.size == 0:
        return []
    cut = np.flatnonzero(sorted_keys[1:] != sorted_keys[:-1]) + 1
    starts = np.concatenate(([0], cut))
    stops = np.concatenate((cut, [sorted_keys.size]))
    return zip(sorted_keys[starts].tolist(), starts.tolist(), stops.tolist())


def request_latencies(req: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per completed request: ttft_s, e2el_s, tpot_s (NaN where output <= 1), queue_s."""
    done = _completed_mask(req)
    arrival = _col(req, "arrival_s")[done]
    first = _col(req, "first_token_s")[done]
    finish = _col(req, "finish_s")[done]
    out_tok = _col(req, "output_tokens", np.int64)[done]
    e2el = finish - arrival
    ttft = first - arrival
    with np.errstate(divide="ignore", invalid="ignore"):
        tpot = np.where(out_tok > 1, (e2el - ttft) / np.maximum(out_tok - 1, 1), np.nan)
    queue = _col(req, "scheduled_s")[done] - arrival
    return {"ttft_s": ttft, "e2el_s": e2el, "tpot_s": tpot, "queue_s": queue}


def _duration(req: Mapping[str, np.ndarray]) -> float:
    """Benchmark window: first arrival to last finish (vLLM: start of sending to last response)."""
    done = _completed_mask(req)
    if not done.any():
        return 0.0
    return float(np.max(_col(req, "finish_s")[done]) - np.min(_col(req, "arrival_s")))


def _per(x: float, d: float) -> float | None:
    return x / d if d > 0 else None


def slo_targets(slo: Any) -> list[tuple[str, str, float]]:
    """(metric, stat, ms) for each SLO target, e.g. ("ttft_ms", "p90", 500.0).

    Accepts SLOSpec (fields ttft_ms, tpot_ms, e2el_ms of (pct_name, ms) pairs), a mapping of the
    same shape, or None.
    """
    if slo is None:
        return []
    out = []
    for metric in _SLO_METRICS:
        entry = slo.get(metric) if isinstance(slo, Mapping) else getattr(slo, metric, None)
        if not entry:
            continue
        pairs = entry.items() if isinstance(entry, Mapping) else entry
        for pct, ms in pairs:
            out.append((metric, _SLO_STAT.get(str(pct), str(pct)), float(ms)))
    return out


def _goodput(lat: dict[str, np.ndarray], targets, duration: float, completed: int) -> dict:
    """A request is good when it meets every per-request threshold (vLLM --goodput semantics).

    A target's value is the per-request threshold of its metric; when one metric has several
    targets (say p50 and p99) the loosest one is the per-request threshold. Requests with one
    output token have TPOT 0 for this test, as in vLLM. ITL targets have no per-request test.
    """
    if not targets:
        return {"goodput_fraction": None, "goodput_rps": None}
    thresholds: dict[str, float] = {}
    for metric, _stat, ms in targets:
        thresholds[metric] = max(thresholds.get(metric, -math.inf), ms)
    per_req = {
        "ttft_ms": lat["ttft_s"] * 1e3,
        "tpot_ms": np.nan_to_num(lat["tpot_s"], nan=0.0) * 1e3,
        "e2el_ms": lat["e2el_s"] * 1e3,
    }
    good = np.ones(completed, dtype=bool)
    for metric, thr in thresholds.items():
        if metric in per_req:
            good &= per_req[metric] <= thr
    n_good = int(good.sum())
    return {
        "goodput_fraction": n_good / completed if completed else None,
        "goodput_rps": _per(n_good, duration),
    }


def slo_attainment(latency: Any, targets) -> tuple[dict[str, Any], bool | None]:
    """Each target of ``targets`` (slo_targets) against the run's statistic in ``latency`` (a
    summary.Latency): ``({"ttft_ms_p90": SloTarget}, every target met)``."""
    out: dict[str, Any] = {}
    met_all = True
    for metric, stat, ms in targets:
        value = getattr(getattr(latency, metric, None), stat, None)
        met = value is not None and value <= ms
        met_all &= met
        out[f"{metric}_{stat}"] = SloTarget(ms, value, bool(met))
    return out, (bool(met_all) if targets else None)
