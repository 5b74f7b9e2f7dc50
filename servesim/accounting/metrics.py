"""Summaries from the engine's raw arrays: latency percentiles, throughput, goodput, utilisation.

Everything here is a pure function of a RawRun (docs/internals.md, "sim (engine)") and the run
config; nothing is simulated. The definitions (vLLM's benchmark_serving) and how ITL is counted
without per-token lists: latency.py's module doc. docs/metrics.md lists every key.

``measure`` runs SECTIONS in order and returns the typed summary (summary.py); ``summarize`` is
its flat form. A new metric is one field on its section's type and its value in the section's
function below (docs/internals.md, "Adding a metric"). The parts: stats.py (sample statistics),
latency.py (per-request latencies, ITL, SLOs, goodput), utilisation.py (MFU/MBU, batch/KV/queue,
pools, links), instances.py, timeseries.py, benchjson.py; every public name of the parts is
importable from here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import cached_property
from typing import Any

import numpy as np

from servesim.accounting.benchjson import DETAILED_KEYS, bench_list_iters, benchmark_json
from servesim.accounting.latency import (
    _col,
    _completed_mask,
    _duration,
    _goodput,
    _per,
    iterations,
    itl_samples,
    itl_stats,
    request_itls,
    request_latencies,
    slo_attainment,
    slo_targets,
    step_order,
)
from servesim.accounting.speculative import speculative
from servesim.accounting.stats import (
    STAT_NAMES,
    Stats,
    sample_stats,
    stats,
    weighted_percentiles,
    weighted_sample_stats,  # noqa: F401 (public name of the parts)
    weighted_stats,
)
from servesim.accounting.summary import (
    ABSENT,
    Cache,
    Keyed,
    Latency,
    PoolStats,
    Queue,
    Requests,
    Slo,
    Summary,
    Throughput,
    Transfers,
    Utilisation,
)
from servesim.accounting.timeseries import time_series
from servesim.accounting.utilisation import _instance_table, _pool_stats, _step_stats, transfers


@dataclass(frozen=True)
class RunView:
    """What the summary sections share, computed once: the run, its config and the request-level
    arrays every section reads."""

    raw: Any
    cfg: Any

    @cached_property
    def done(self) -> np.ndarray:
        return _completed_mask(self.raw.requests)

    @cached_property
    def completed(self) -> int:
        return int(self.done.sum())

    @cached_property
    def duration(self) -> float:
        return _duration(self.raw.requests)

    @cached_property
    def tokens(self) -> tuple[int, int]:
        """(input, output) tokens of the completed requests."""
        req, done = self.raw.requests, self.done
        prompt = _col(req, "prompt_tokens", np.int64)
        output = _col(req, "output_tokens", np.int64)
        return int(prompt[done].sum()), int(output[done].sum())

    @cached_property
    def latencies(self) -> dict[str, np.ndarray]:
        return request_latencies(self.raw.requests)

    @cached_property
    def targets(self) -> list[tuple[str, str, float]]:
        return slo_targets(getattr(self.cfg, "slo", None))

    @cached_property
    def instances(self) -> Any:
        return _instance_table(self.raw)


def _requests(v: RunView, _so_far: dict) -> Requests:
    total_in, total_out = v.tokens
    # the engine records finished requests; `issued` counts every request that arrived
    issued = max(int(getattr(v.raw, "issued", 0) or 0), int(v.done.size))
    dropped = getattr(v.raw, "dropped", {})  # failed_<reason>: requests refused at entry
    return Requests(
        num_requests=issued,
        completed=v.completed,
        failed=issued - v.completed,
        failed_by={k.removeprefix("failed_"): n for k, n in dropped.items()},
        duration_s=v.duration,
        sim_end_s=float(v.raw.sim_end_s),
        total_input_tokens=total_in,
        total_output_tokens=total_out,
    )


def _throughput(v: RunView, _so_far: dict) -> Throughput:
    total_in, total_out = v.tokens
    return Throughput(
        request_throughput=_per(v.completed, v.duration),
        output_throughput=_per(total_out, v.duration),
        total_token_throughput=_per(total_in + total_out, v.duration),
    )


def _latency(v: RunView, _so_far: dict) -> Latency:
    lat = v.latencies
    tpot = lat["tpot_s"]
    return Latency(
        ttft_ms=sample_stats(lat["ttft_s"] * 1e3),
        tpot_ms=sample_stats(tpot[np.isfinite(tpot)] * 1e3),
        # weighted_sample_stats(gaps * 1e3, counts) of itl_samples, without their full copies
        itl_ms=itl_stats(v.raw.steps),
        e2el_ms=sample_stats(lat["e2el_s"] * 1e3),
    )


def _queue(v: RunView, _so_far: dict) -> Queue:
    q = v.latencies["queue_s"] * 1e3
    return Queue(
        queue_ms_mean=float(q.mean()) if q.size else None,
        queue_ms_p99=float(np.percentile(q, 99)) if q.size else None,
        queue_ms_max=float(q.max()) if q.size else None,
    )


def _slo(v: RunView, so_far: dict) -> Slo:
    targets, attained = slo_attainment(so_far["latency"], v.targets)
    return Slo(
        **_goodput(v.latencies, v.targets, v.duration, v.completed),
        targets=targets,
        slo_attained=attained,
    )


def _utilisation(v: RunView, _so_far: dict) -> Utilisation:
    return _step_stats(v.raw.steps, v.instances, v.duration)


def _cache(v: RunView, _so_far: dict) -> Cache:
    req = v.raw.requests
    preempt = _col(req, "preemptions", np.int64)
    cached = int(_col(req, "cached_tokens", np.int64)[v.done].sum())
    return Cache(
        preemptions=int(preempt.sum()),
        preempted_requests=int((preempt > 0).sum()),
        cached_prompt_tokens=cached,
        prefix_cache_hit_rate=_per(cached, v.tokens[0]),
    )


def _transfers(v: RunView, _so_far: dict) -> Transfers:
    return transfers(v.raw, v.instances, v.duration)


def _pools(v: RunView, _so_far: dict) -> dict[str, PoolStats]:
    return _pool_stats(v.raw, v.instances, v.duration)


def _speculative(v: RunView, _so_far: dict) -> Any:
    return speculative(getattr(v.raw, "spec", None) or {})


# Summary field -> the function that computes it: (RunView, sections so far) -> its value. Run in
# this order; a new metric is one field on its section's type (summary.py) computed here.
SECTIONS: dict[str, Callable[[RunView, dict], Any]] = {
    "requests": _requests,
    "throughput": _throughput,
    "latency": _latency,
    "queue": _queue,
    "slo": _slo,
    "utilisation": _utilisation,
    "cache": _cache,
    "transfers": _transfers,
    "pools": _pools,
    "speculative": _speculative,
}
# energy, cost and interval are added by result.build_result (they need the cost model)
assert tuple(SECTIONS) == tuple(f.name for f in fields(Summary))[: len(SECTIONS)]


def measure(raw: Any, cfg: Any) -> Summary:
    """The typed summary of one run's metrics (energy, cost and intervals left ABSENT)."""
    view = RunView(raw, cfg)
    parts: dict[str, Any] = {}
    for name, section in SECTIONS.items():
        parts[name] = section(view, parts)
    return Summary(**parts)


def summarize(raw: Any, cfg: Any) -> dict[str, Any]:
    """The flat summary of one run (docs/metrics.md): counts, throughput, latency stats, goodput,
    SLO attainment, MFU/MBU, KV use, batch and queue statistics, preemptions, prefix-cache hits,
    KV transfers and, with more than one pool, ``pool.<name>.*``: ``measure(raw, cfg).flat()``."""
    return measure(raw, cfg).flat()


__all__ = [
    "ABSENT", "DETAILED_KEYS", "SECTIONS", "STAT_NAMES", "Keyed", "RunView", "Stats", "Summary", "measure", "bench_list_iters", "benchmark_json", "itl_samples", "iterations", "request_itls",
    "request_latencies", "slo_targets", "stats", "step_order", "summarize", "time_series",
    "weighted_percentiles", "weighted_stats",
]  # fmt: skip
