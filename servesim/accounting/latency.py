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
    if len(steps["instance"]) == 0:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    order = step_order(steps)
    inst = _col(steps, "instance", np.int64)[order]
    start = _col(steps, "start_s")[order]
    dur = _col(steps, "duration_s")[order]
    k = iterations(steps)[order]
    n = _col(steps, "decode_seqs", np.int64)[order]
    new = _col(steps, "new_tokens", np.int64)[order]
    if "spec_tokens" in steps:  # speculative steps emit extra tokens per sequence, one ITL sample
        new = new - _col(steps, "spec_tokens", np.int64)[order]
    first_tokens = np.maximum(new - n * k, 0)
    end = start + dur
    per_iter = dur / k
    first_end = start + per_iter  # end of a row's first iteration
    prev_dec, next_dec = _decode_neighbours(inst, n > 0)
    # requests whose first token came at row j decode next at row next_dec[j]
    joins = (first_tokens > 0) & (next_dec >= 0)
    j_rows = np.flatnonzero(joins)
    join_gap = first_end[next_dec[j_rows]] - end[j_rows]
    joined = np.bincount(next_dec[j_rows], weights=first_tokens[j_rows], minlength=n.size)
    # the others decoded in the previous decode row (or, for an instance's first, none: own time)
    has_prev = prev_dec >= 0
    cont_gap = np.where(has_prev, first_end - end[np.where(has_prev, prev_dec, 0)], per_iter)
    cont = np.maximum(n - joined.astype(np.int64), 0)
    gaps = np.concatenate((join_gap, cont_gap, per_iter))
    counts = np.concatenate((first_tokens[j_rows], cont, n * (k - 1)))
    return gaps, counts


def _decode_neighbours(inst: np.ndarray, is_dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows sorted by (instance, time): index of the previous and of the next row of the same
    instance with decodes (-1 if none)."""
    idx = np.arange(inst.size)
    group_start = np.zeros(inst.size, dtype=np.int64)
    cut = np.flatnonzero(inst[1:] != inst[:-1]) + 1
    group_start[cut] = cut
    group_start = np.maximum.accumulate(group_start)
    group_end = np.full(inst.size, inst.size, dtype=np.int64)
    group_end[cut - 1] = cut
    group_end = np.minimum.accumulate(group_end[::-1])[::-1]
    last = np.maximum.accumulate(np.where(is_dec, idx, -1))
    prev = np.concatenate(([-1], last[:-1]))
    prev = np.where(prev >= group_start, prev, -1)
    nxt_all = np.minimum.accumulate(np.where(is_dec, idx, inst.size)[::-1])[::-1]
    nxt = np.concatenate((nxt_all[1:], [inst.size]))
    nxt = np.where(nxt < group_end, nxt, -1)
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
