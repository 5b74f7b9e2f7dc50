"""Steady-state statistics of a run: the measurement window genai-perf and NIM's guide use.

A closed-loop run starts with every client sending at t = 0 (a cold burst a long-running
benchmark does not have) and ends with a drain (clients stop, the batch empties). The window
keeps the requests sent after the first ``concurrency`` ones and finished by the last send, so
each kept request ran at full load from its first to its last token. Output throughput over the
window is, for a closed loop, ``concurrency x output tokens / request latency`` summed over the
kept requests (Little's law, no think time); for an open loop, the kept requests' output tokens
over the window's span. When too few requests remain, the window widens to every request sent
after the burst ("after-burst"), then to all ("all"); ``window`` says which was used.
experiments/nim_validation uses the same window (``servesim bench --steady-state``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

_STATS = {"ttft": "ttft_s", "tpot": "tpot_s", "e2el": "e2el_s"}


def steady_window(requests: pd.DataFrame, concurrency: int) -> tuple[pd.DataFrame, str]:
    """The kept requests (finished ones only) and the window's name."""
    req = requests[requests["finish_s"].notna()]
    if req.empty:
        return req, "all"
    req = req.sort_values(["arrival_s", "request_id"], kind="stable")
    t_a = float(req["arrival_s"].iloc[min(int(concurrency), len(req) - 1)])
    t_b = float(req["arrival_s"].iloc[-1])
    keep = req[(req["arrival_s"] >= t_a) & (req["finish_s"] <= t_b)]
    if not keep.empty:
        return keep, "steady"
    keep = req[req["arrival_s"] >= t_a]
    return (keep, "after-burst") if not keep.empty else (req, "all")


def steady_stats(
    result: Any, concurrency: int, closed_loop: bool, percentiles: Sequence[float] = (99.0,)
) -> dict[str, Any]:
    """Benchmark-JSON keys (vLLM names) computed over the steady window of ``result``.

    ITL samples are those of the decode steps that end inside the window (metrics.itl_samples
    on the window's steps). Example: ``steady_stats(res, 8, True)["mean_ttft_ms"]``.
    """
    from servesim.accounting.metrics import itl_samples, weighted_percentiles

    keep, window = steady_window(result.requests, concurrency)
    out: dict[str, Any] = {"steady_window": window, "steady_requests": int(len(keep))}
    if keep.empty:
        return out
    t0, t1 = float(keep["arrival_s"].min()), float(keep["finish_s"].max())
    tokens = float(keep["output_tokens"].sum())
    inputs = float(keep["prompt_tokens"].sum())
    if closed_loop:
        per_s = concurrency / float(keep["e2el_s"].sum())  # Little's law: requests per second
        out["request_throughput"] = per_s * len(keep)
        out["output_throughput"] = per_s * tokens
        out["total_token_throughput"] = per_s * (tokens + inputs)
    else:
        span = max(t1 - t0, 1e-12)
        out["request_throughput"] = len(keep) / span
        out["output_throughput"] = tokens / span
        out["total_token_throughput"] = (tokens + inputs) / span
    for m, col in _STATS.items():
        v = keep[col].to_numpy(dtype=float)
        v = v[np.isfinite(v)]
        _put(out, m, v * 1e3, percentiles)
    steps = result.raw.steps
    ends = np.asarray(steps["start_s"], dtype=float) + np.asarray(steps["duration_s"], dtype=float)
    inside = (ends >= t0) & (ends <= t1)
    gaps, counts = itl_samples({k: np.asarray(v)[inside] for k, v in steps.items()})
    if counts.sum():
        mean = float(np.average(gaps, weights=counts))
        out["mean_itl_ms"] = mean * 1e3
        out["std_itl_ms"] = float(np.sqrt(np.average((gaps - mean) ** 2, weights=counts))) * 1e3
        out["median_itl_ms"] = float(weighted_percentiles(gaps, counts, [50.0])[0]) * 1e3
        for p in percentiles:
            q = weighted_percentiles(gaps, counts, [p])[0]
            out[f"p{_word(p)}_itl_ms"] = float(q) * 1e3
    return out


def _put(out: dict, m: str, v: np.ndarray, percentiles: Sequence[float]) -> None:
    if not v.size:
        return
    out[f"mean_{m}_ms"] = float(v.mean())
    out[f"median_{m}_ms"] = float(np.median(v))
    out[f"std_{m}_ms"] = float(v.std())
    for p in percentiles:
        out[f"p{_word(p)}_{m}_ms"] = float(np.percentile(v, p))


def _word(p: float) -> str:
    return str(int(p)) if int(p) == p else str(p)
