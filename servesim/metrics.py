"""Summaries from the engine's raw arrays: latency percentiles, throughput, goodput, utilisation.

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
from the previous step there, not from the first token on the prefill instance.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

# name used in summary keys -> percentile (None: mean / std, handled apart)
STAT_NAMES = ("mean", "median", "p90", "p95", "p99", "p99_9", "std")
_PCTS = {"median": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p99_9": 99.9}
# SLO percentile names (run config) -> summary stat name
_SLO_STAT = {"mean": "mean", "p50": "median", "median": "median", "p90": "p90", "p95": "p95",
             "p99": "p99", "p99.9": "p99_9", "p99_9": "p99_9"}  # fmt: skip
_SLO_METRICS = ("ttft_ms", "tpot_ms", "e2el_ms", "itl_ms")
_LATENCIES = ("ttft", "tpot", "itl", "e2el")


# ------------------------------------------------------------------------------ statistics


def stats(values: np.ndarray, prefix: str) -> dict[str, float | None]:
    """mean, median, p90, p95, p99, p99.9, std of ``values`` as ``{prefix}_{stat}``; None if empty."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return _pack(prefix, None, None, [None] * len(_PCTS))
    return _pack(prefix, np.mean(v), np.std(v), np.percentile(v, list(_PCTS.values())))


def _pack(prefix: str, mean: Any, std: Any, qs: Any) -> dict[str, float | None]:
    out = {"mean": mean, "std": std, **dict(zip(_PCTS, qs))}
    return {f"{prefix}_{s}": None if out[s] is None else float(out[s]) for s in STAT_NAMES}


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
    v = np.asarray(values, dtype=float)
    w = np.asarray(weights, dtype=np.int64)
    n = int(w.sum()) if w.size else 0
    if n == 0:
        return _pack(prefix, None, None, [None] * len(_PCTS))
    mean = float(np.dot(v, w) / n)
    std = math.sqrt(max(float(np.dot(w, (v - mean) ** 2)) / n, 0.0))
    return _pack(prefix, mean, std, weighted_percentiles(v, w, list(_PCTS.values())))


# ------------------------------------------------------------------------------ raw helpers


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
    first_tokens = np.maximum(_col(steps, "new_tokens", np.int64)[order] - n * k, 0)
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
    for r in range(n):
        k = int(outputs[r]) - 1
        if k <= 0 or not math.isfinite(finish[r]) or int(inst[r]) not in bounds:
            yield empty
            continue
        a, b = bounds[int(inst[r])]
        ends = s_end[a:b]
        # float tolerance: the engine's clock and start + duration may differ in the last bit
        j = int(np.searchsorted(ends, finish[r] + 1e-9, side="right"))
        token_times = np.concatenate(([first[r]], ends[max(j - k, 0) : j]))
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


# ------------------------------------------------------------------------------ SLOs


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


def _slo_attainment(summary: dict, targets) -> dict:
    out: dict[str, Any] = {}
    met_all = True
    for metric, stat, ms in targets:
        value = summary.get(f"{metric}_{stat}")
        met = value is not None and value <= ms
        met_all &= met
        name = f"slo.{metric}_{stat}"
        out[f"{name}.target"] = ms
        out[f"{name}.value"] = value
        out[f"{name}.met"] = bool(met)
    out["slo_attained"] = bool(met_all) if targets else None
    return out


# ------------------------------------------------------------------------------ steps


def _instance_table(raw: Any) -> pd.DataFrame:
    """One row per instance: instance, pool, devices, peak_flops, mem_bw (per device, SI)."""
    rows = [
        {
            "instance": int(i.instance_id),
            "pool": str(i.pool),
            "devices": int(i.devices),
            "peak_flops": float(i.peak_flops),
            "mem_bw": float(i.mem_bw),
            "replica": int(getattr(i, "replica", -1)),
        }
        for i in raw.instances
    ]
    cols = ["instance", "pool", "devices", "peak_flops", "mem_bw", "replica"]
    return pd.DataFrame(rows, columns=cols).sort_values("instance", kind="stable")


def _step_stats(steps: Mapping[str, np.ndarray], inst: pd.DataFrame, duration: float) -> dict:
    """Utilisation and batch/KV/queue statistics over a set of steps and instances."""
    n_steps = len(steps["instance"])
    flops_cap = float((inst["peak_flops"] * inst["devices"]).sum()) * duration
    bw_cap = float((inst["mem_bw"] * inst["devices"]).sum()) * duration
    if n_steps == 0:
        return {"steps": 0, "busy_fraction": 0.0 if len(inst) else None, "mfu": 0.0, "mbu": 0.0,
                "batch_size_mean": None, "batch_size_max": None, "kv_usage_mean": None,
                "kv_usage_max": None, "queue_len_mean": None, "queue_len_max": None}  # fmt: skip
    dur = _col(steps, "duration_s")
    total_blocks = _col(steps, "kv_total_blocks")
    with np.errstate(divide="ignore", invalid="ignore"):
        kv = np.where(total_blocks > 0, _col(steps, "kv_used_blocks") / total_blocks, 0.0)
    busy = float(dur.sum())
    batch = _col(steps, "batch_size")
    waiting = _col(steps, "waiting")
    iters = iterations(steps)
    return {
        "steps": int(iters.sum()),
        "busy_fraction": _per(busy, duration * len(inst)),
        "mfu": _per(float(_col(steps, "flops").sum()), flops_cap),
        "mbu": _per(float(_col(steps, "bytes").sum()), bw_cap),
        "batch_size_mean": float(np.dot(batch, iters) / iters.sum()),
        "batch_size_max": int(batch.max()),
        "kv_usage_mean": float(np.dot(kv, dur) / busy) if busy > 0 else float(kv.mean()),
        "kv_usage_max": float(kv.max()),
        "queue_len_mean": _per(float(np.dot(waiting, dur)), duration * len(inst)),
        "queue_len_max": int(waiting.max()),
    }


def _subset(table: Mapping[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
    return {k: np.asarray(v)[mask] for k, v in table.items()}


def _pool_stats(raw: Any, inst: pd.DataFrame, duration: float) -> dict:
    """``pool.<name>.*`` keys, only when the deployment has more than one pool."""
    pools = list(dict.fromkeys(inst["pool"]))
    if len(pools) < 2:
        return {}
    out: dict[str, Any] = {}
    s_inst = _col(raw.steps, "instance", np.int64)
    r_inst = _col(raw.requests, "instance", np.int64)
    r_pre = _col(raw.requests, "prefill_instance", np.int64)
    queue = _col(raw.requests, "scheduled_s") - _col(raw.requests, "arrival_s")
    for pool in pools:
        members = inst[inst["pool"] == pool]
        ids = members["instance"].to_numpy()
        st = _step_stats(_subset(raw.steps, np.isin(s_inst, ids)), members, duration)
        p = f"pool.{pool}"
        # replicas, not the virtual engines of a pipelined replica
        replicas = np.where(members["replica"] < 0, members["instance"], members["replica"])
        out[f"{p}.instances"] = len(set(replicas.tolist()))
        out[f"{p}.utilisation"] = st["busy_fraction"]
        for key in ("steps", "mfu", "mbu", "batch_size_mean", "kv_usage_mean", "kv_usage_max",
                    "queue_len_mean", "queue_len_max"):  # fmt: skip
            out[f"{p}.{key}"] = st[key]
        served = np.isin(r_inst, ids) | np.isin(r_pre, ids)
        out[f"{p}.requests"] = int(served.sum())
        first_stage = np.isin(np.where(r_pre >= 0, r_pre, r_inst), ids)
        q = queue[first_stage & np.isfinite(queue)]
        out[f"{p}.queue_ms_mean"] = float(q.mean() * 1e3) if q.size else None
    return out


# ------------------------------------------------------------------------------ summary


def summarize(raw: Any, cfg: Any) -> dict[str, Any]:
    """The flat summary of one run (docs/metrics.md): counts, throughput, latency stats, goodput,
    SLO attainment, MFU/MBU, KV use, batch and queue statistics, preemptions, prefix-cache hits,
    KV transfers and, with more than one pool, ``pool.<name>.*``."""
    req = raw.requests
    done = _completed_mask(req)
    completed = int(done.sum())
    duration = _duration(req)
    prompt = _col(req, "prompt_tokens", np.int64)
    output = _col(req, "output_tokens", np.int64)
    total_in, total_out = int(prompt[done].sum()), int(output[done].sum())
    # the engine records finished requests; `issued` counts every request that arrived
    issued = max(int(getattr(raw, "issued", 0) or 0), int(done.size))
    out: dict[str, Any] = {
        "num_requests": issued,
        "completed": completed,
        "failed": issued - completed,
        **getattr(raw, "dropped", {}),  # failed_<reason>: requests refused at entry
        "duration_s": duration,
        "sim_end_s": float(raw.sim_end_s),
        "total_input_tokens": total_in,
        "total_output_tokens": total_out,
        "request_throughput": _per(completed, duration),
        "output_throughput": _per(total_out, duration),
        "total_token_throughput": _per(total_in + total_out, duration),
    }
    lat = request_latencies(req)
    out.update(stats(lat["ttft_s"] * 1e3, "ttft_ms"))
    tpot = lat["tpot_s"]
    out.update(stats(tpot[np.isfinite(tpot)] * 1e3, "tpot_ms"))
    gaps, counts = itl_samples(raw.steps)
    out.update(weighted_stats(gaps * 1e3, counts, "itl_ms"))
    out.update(stats(lat["e2el_s"] * 1e3, "e2el_ms"))
    q = lat["queue_s"] * 1e3
    out["queue_ms_mean"] = float(q.mean()) if q.size else None
    out["queue_ms_p99"] = float(np.percentile(q, 99)) if q.size else None
    out["queue_ms_max"] = float(q.max()) if q.size else None

    targets = slo_targets(getattr(cfg, "slo", None))
    out.update(_goodput(lat, targets, duration, completed))
    out.update(_slo_attainment(out, targets))

    inst = _instance_table(raw)
    out.update(_step_stats(raw.steps, inst, duration))
    preempt = _col(req, "preemptions", np.int64)
    cached = int(_col(req, "cached_tokens", np.int64)[done].sum())
    out.update({
        "preemptions": int(preempt.sum()),
        "preempted_requests": int((preempt > 0).sum()),
        "cached_prompt_tokens": cached,
        "prefix_cache_hit_rate": _per(cached, total_in),
    })  # fmt: skip
    out.update(_transfer_stats(req))
    out.update(_link_stats(getattr(raw, "transfers", None) or {}, inst, duration))
    out.update(_pool_stats(raw, inst, duration))
    return out


def _link_stats(t: Mapping[str, np.ndarray], inst: pd.DataFrame, duration: float) -> dict:
    """KV hand-offs of a prefill/decode split (raw.transfers, one row per transfer)."""
    if "bytes" not in t or not len(t["bytes"]):
        return {}
    wait = _col(t, "wait_s") * 1e3
    links = int((inst["pool"] == "prefill").sum()) or 1
    out = {
        "kv_transfers": int(len(t["bytes"])),
        "kv_transfer_bytes_total": float(_col(t, "bytes").sum()),
        "kv_transfer_wait_ms_mean": float(wait.mean()),
        "kv_transfer_wait_ms_p99": float(np.percentile(wait, 99)),
    }
    if "busy_s" in t:
        out["kv_link_utilisation"] = _per(float(_col(t, "busy_s").sum()), duration * links)
    if "decode_queue_s" in t:
        q = _col(t, "decode_queue_s")
        q = q[q >= 0] * 1e3
        out["decode_queue_ms_mean"] = float(q.mean()) if q.size else None
        out["decode_queue_ms_p99"] = float(np.percentile(q, 99)) if q.size else None
    return out


def _transfer_stats(req: Mapping[str, np.ndarray]) -> dict:
    split = _col(req, "prefill_instance", np.int64) >= 0
    if not split.any():
        return {}
    t = _col(req, "kv_transfer_s")[split & _completed_mask(req)] * 1e3
    return {
        "kv_transfer_ms_mean": float(t.mean()) if t.size else None,
        "kv_transfer_ms_p99": float(np.percentile(t, 99)) if t.size else None,
    }


# ------------------------------------------------------------------------------ time series


def time_series(raw: Any, interval_s: float) -> pd.DataFrame:
    """Per instance and time bin of ``interval_s``: steps, busy fraction, mean batch size, KV use,
    queue length, running requests and emitted tokens per second.

    A step counts in the bin where it starts (steps are short next to the bin). Batch size, KV use,
    queue and running are step means weighted by step duration; a bin with no step has batch 0,
    queue 0 and the KV use of the instance's last step before it.
    """
    if not interval_s > 0:
        raise ValueError("interval_s must be > 0")
    steps = raw.steps
    ids = sorted(int(i.instance_id) for i in raw.instances)
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
    out["busy_fraction"] = (busy.fillna(0.0) / interval_s).to_numpy()
    for c in ("batch_size", "waiting", "running"):
        out[c] = (agg[f"w_{c}"] / busy.where(busy > 0)).fillna(0.0)
    kv = agg["w_kv_usage"] / busy.where(busy > 0)
    out["kv_usage"] = kv.fillna(agg["kv_last"]).groupby(level="instance").ffill().fillna(0.0)
    out["tokens_per_s"] = agg["tokens"].fillna(0.0) / interval_s
    out = out.reset_index()
    out["time_s"] = out["bin"] * interval_s
    return out[cols].reset_index(drop=True)


# ------------------------------------------------------------------------------ benchmark JSON

# Per-request lists of vLLM's result JSON; omitted with detailed=False, as vLLM does without
# --save-detailed.
DETAILED_KEYS = ("input_lens", "output_lens", "ttfts", "itls", "generated_texts", "errors")


def benchmark_json(
    summary: Mapping[str, Any],
    raw: Any,
    cfg: Any,
    extra: Mapping[str, Any] | None = None,
    *,
    detailed: bool = True,
    percentiles: Sequence[float] = (99.0,),
) -> dict[str, Any]:
    """The result JSON of vLLM's benchmark_serving / ``vllm bench serve`` for a simulated run.

    Same keys and units: durations in seconds, per-request ``ttfts`` in seconds and ``itls`` as
    lists of seconds, summary latencies in ms (mean/median/std from ``summary``, percentiles
    ``p{P}_{metric}_ms`` for ``percentiles``, vLLM's default being 99). ``date`` is None unless
    ``extra`` gives one (results hold no wall clock). ``extra`` keys are merged last, like vLLM's
    --metadata.
    """
    req = raw.requests
    done = _completed_mask(req)
    meta = _bench_meta(cfg, int(summary.get("num_requests", done.size)))
    res: dict[str, Any] = dict(meta)
    res.update({
        "duration": summary["duration_s"],
        "completed": summary["completed"],
        "failed": summary.get("failed", 0),
        "total_input_tokens": summary["total_input_tokens"],
        "total_output_tokens": summary["total_output_tokens"],
        "request_throughput": summary["request_throughput"],
        "request_goodput": summary.get("goodput_rps"),
        "output_throughput": summary["output_throughput"],
        "total_token_throughput": summary["total_token_throughput"],
    })  # fmt: skip
    if detailed:
        res.update(_bench_lists(raw, done))
    res.update(_bench_peaks(raw, done))
    lat = request_latencies(req)
    tpot = lat["tpot_s"]
    per_metric = {"ttft": lat["ttft_s"], "tpot": tpot[np.isfinite(tpot)], "e2el": lat["e2el_s"]}
    gaps, counts = itl_samples(raw.steps)
    for m in _LATENCIES:
        for s in ("mean", "median", "std"):
            res[f"{s}_{m}_ms"] = summary.get(f"{m}_ms_{s}")
        for p in percentiles:
            word = str(int(p)) if int(p) == p else str(p)
            if m == "itl":
                q = weighted_percentiles(gaps, counts, [p])[0] if counts.sum() else None
            else:
                v = per_metric[m]
                q = float(np.percentile(v, p)) if v.size else None
            res[f"p{word}_{m}_ms"] = None if q is None else float(q) * 1e3
    if extra:
        res.update(extra)
    return res


def _bench_meta(cfg: Any, num_prompts: int) -> dict[str, Any]:
    wl = getattr(cfg, "workload", None)
    arrivals = getattr(wl, "arrivals", None)
    clients = getattr(wl, "clients", None)
    rate: Any = "inf"
    burstiness = 1.0
    if arrivals is not None and getattr(arrivals, "rate", None) is not None:
        rate = float(arrivals.rate)
        cv = getattr(arrivals, "cv", None)
        # vLLM draws gamma inter-arrivals with shape = burstiness: CV = 1 / sqrt(burstiness)
        if getattr(arrivals, "process", "poisson") == "gamma" and cv:
            burstiness = 1.0 / float(cv) ** 2
        elif getattr(arrivals, "process", "poisson") == "constant":
            burstiness = "inf"
    model = getattr(cfg, "model", None)
    model_id = getattr(model, "name", None)
    return {
        "date": None,
        "backend": "servesim",
        "model_id": model_id,
        "tokenizer_id": model_id,
        "num_prompts": num_prompts,
        "request_rate": rate,
        "burstiness": burstiness,
        "max_concurrency": getattr(clients, "concurrency", None)
        or getattr(wl, "max_concurrency", None),
    }


def _bench_lists(raw: Any, done: np.ndarray) -> dict[str, list]:
    return {k: list(v) for k, v in bench_list_iters(raw).items()}


def bench_list_iters(raw: Any) -> dict[str, Iterable]:
    """The per-request lists of benchmark JSON (DETAILED_KEYS), each as a lazy iterable of
    plain Python values, for writers that stream them."""
    req = raw.requests
    done = _completed_mask(req)
    ttft = np.where(done, _col(req, "first_token_s") - _col(req, "arrival_s"), 0.0)
    n = done.size
    return {
        "input_lens": (int(x) for x in _col(req, "prompt_tokens", np.int64)),
        "output_lens": (int(x) for x in np.where(done, _col(req, "output_tokens", np.int64), 0)),
        "ttfts": (float(t) for t in ttft),
        "itls": (g.tolist() for g in iter_request_itls(raw)),
        "generated_texts": ("" for _ in range(n)),
        "errors": ("" if d else "not finished" for d in done.tolist()),
    }


def _bench_peaks(raw: Any, done: np.ndarray) -> dict[str, Any]:
    """vLLM's max_output_tokens_per_s (1 s buckets from the first start) and the peak number of
    requests in flight (arrival to finish, half-open)."""
    req, steps = raw.requests, raw.steps
    if not done.any():
        return {"max_output_tokens_per_s": 0.0, "max_concurrent_requests": 0}
    arrival = _col(req, "arrival_s")[done]
    finish = _col(req, "finish_s")[done]
    t0 = float(arrival.min())
    peak_tok = 0.0
    if len(steps["instance"]):
        ends = _col(steps, "start_s") + _col(steps, "duration_s")
        tokens = _col(steps, "new_tokens")
        b = np.floor(ends - t0).astype(np.int64)
        ok = b >= 0
        if ok.any():
            peak_tok = float(np.bincount(b[ok], weights=tokens[ok]).max())
    times = np.concatenate((arrival, finish))
    delta = np.concatenate((np.ones(arrival.size), -np.ones(finish.size)))
    order = np.lexsort((delta, times))  # departures first at equal times
    peak = int(np.cumsum(delta[order]).max())
    return {"max_output_tokens_per_s": peak_tok, "max_concurrent_requests": peak}
