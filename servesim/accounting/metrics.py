"""Summaries from the engine's raw arrays: latency percentiles, throughput, goodput, utilisation.

Everything here is a pure function of a RawRun (docs/internals.md, "sim (engine)") and the run
config; nothing is simulated. Definitions follow vLLM's benchmark_serving (vllm/benchmarks/serve.py,
``calculate_metrics``): TTFT, TPOT = (E2E - TTFT) / (output - 1) over requests with more than one
output token, ITL = gaps between a request's successive tokens, E2EL = finish - arrival; mean,
median, population std (``np.std``) and linear-interpolated percentiles (``np.percentile``).
docs/metrics.md lists every key.

The parts: stats.py (sample statistics), latency.py (per-request latencies, ITL, SLOs, goodput),
utilisation.py (MFU/MBU, batch/KV/queue, pools, links), timeseries.py, benchjson.py. ``summarize``
runs SECTIONS in order; a new metric is one function added there (and its keys in
docs/metrics.md). Every public name of the parts is importable from here.

How ITL is counted without per-token lists: latency.py's module doc.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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
    _slo_attainment,
    iterations,
    itl_samples,
    request_itls,
    request_latencies,
    slo_targets,
    step_order,
)
from servesim.accounting.speculative import spec_section
from servesim.accounting.stats import STAT_NAMES, stats, weighted_percentiles, weighted_stats
from servesim.accounting.timeseries import time_series
from servesim.accounting.utilisation import (
    _instance_table,
    _link_stats,
    _pool_stats,
    _step_stats,
    _transfer_stats,
)


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


def _counts(v: RunView, _so_far: dict) -> dict:
    total_in, total_out = v.tokens
    duration, completed = v.duration, v.completed
    # the engine records finished requests; `issued` counts every request that arrived
    issued = max(int(getattr(v.raw, "issued", 0) or 0), int(v.done.size))
    return {
        "num_requests": issued,
        "completed": completed,
        "failed": issued - completed,
        **getattr(v.raw, "dropped", {}),  # failed_<reason>: requests refused at entry
        "duration_s": duration,
        "sim_end_s": float(v.raw.sim_end_s),
        "total_input_tokens": total_in,
        "total_output_tokens": total_out,
        "request_throughput": _per(completed, duration),
        "output_throughput": _per(total_out, duration),
        "total_token_throughput": _per(total_in + total_out, duration),
    }


def _latency(v: RunView, _so_far: dict) -> dict:
    lat = v.latencies
    out = stats(lat["ttft_s"] * 1e3, "ttft_ms")
    tpot = lat["tpot_s"]
    out.update(stats(tpot[np.isfinite(tpot)] * 1e3, "tpot_ms"))
    gaps, counts = itl_samples(v.raw.steps)
    out.update(weighted_stats(gaps * 1e3, counts, "itl_ms"))
    out.update(stats(lat["e2el_s"] * 1e3, "e2el_ms"))
    return out


def _queue(v: RunView, _so_far: dict) -> dict:
    q = v.latencies["queue_s"] * 1e3
    return {
        "queue_ms_mean": float(q.mean()) if q.size else None,
        "queue_ms_p99": float(np.percentile(q, 99)) if q.size else None,
        "queue_ms_max": float(q.max()) if q.size else None,
    }


def _slos(v: RunView, so_far: dict) -> dict:
    out = _goodput(v.latencies, v.targets, v.duration, v.completed)
    out.update(_slo_attainment(so_far, v.targets))
    return out


def _utilisation(v: RunView, _so_far: dict) -> dict:
    return _step_stats(v.raw.steps, v.instances, v.duration)


def _preemption_and_cache(v: RunView, _so_far: dict) -> dict:
    req = v.raw.requests
    preempt = _col(req, "preemptions", np.int64)
    cached = int(_col(req, "cached_tokens", np.int64)[v.done].sum())
    return {
        "preemptions": int(preempt.sum()),
        "preempted_requests": int((preempt > 0).sum()),
        "cached_prompt_tokens": cached,
        "prefix_cache_hit_rate": _per(cached, v.tokens[0]),
    }


def _transfers(v: RunView, _so_far: dict) -> dict:
    out = _transfer_stats(v.raw.requests)
    out.update(_link_stats(getattr(v.raw, "transfers", None) or {}, v.instances, v.duration))
    return out


def _pools(v: RunView, _so_far: dict) -> dict:
    return _pool_stats(v.raw, v.instances, v.duration)


# The summary's sections, in key order: (RunView, summary so far) -> {key: value}. A new metric is
# one function here (a key in an existing section, or a new section) plus its line in
# docs/metrics.md.
SECTIONS: tuple[Callable[[RunView, dict], dict], ...] = (
    _counts, _latency, _queue, _slos, _utilisation, _preemption_and_cache, _transfers, _pools,
    spec_section,
)  # fmt: skip


def summarize(raw: Any, cfg: Any) -> dict[str, Any]:
    """The flat summary of one run (docs/metrics.md): counts, throughput, latency stats, goodput,
    SLO attainment, MFU/MBU, KV use, batch and queue statistics, preemptions, prefix-cache hits,
    KV transfers and, with more than one pool, ``pool.<name>.*``."""
    view = RunView(raw, cfg)
    out: dict[str, Any] = {}
    for section in SECTIONS:
        out.update(section(view, out))
    return out


__all__ = [
    "DETAILED_KEYS", "SECTIONS", "STAT_NAMES", "RunView", "bench_list_iters", "benchmark_json", "itl_samples", "iterations", "request_itls",
    "request_latencies", "slo_targets", "stats", "step_order", "summarize", "time_series",
    "weighted_percentiles", "weighted_stats",
]  # fmt: skip
