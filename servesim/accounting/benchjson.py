"""vLLM benchmark_serving's result JSON for a simulated run (benchmark.json)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from servesim.accounting.latency import (
    _col,
    _completed_mask,
    iter_request_itls,
    itl_parts,
    request_latencies,
)
from servesim.accounting.stats import parts_percentiles

_LATENCIES = ("ttft", "tpot", "itl", "e2el")

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
    itl = itl_parts(raw.steps)  # weighted_percentiles of itl_samples, without their copies
    itl_any = itl.total() > 0
    for m in _LATENCIES:
        for s in ("mean", "median", "std"):
            res[f"{s}_{m}_ms"] = summary.get(f"{m}_ms_{s}")
        for p in percentiles:
            word = str(int(p)) if int(p) == p else str(p)
            if m == "itl":
                q = parts_percentiles(itl, [p])[0] if itl_any else None
            else:
                v = per_metric[m]
                q = float(np.percentile(v, p)) if v.size else None
            res[f"p{word}_{m}_ms"] = None if q is None else float(q) * 1e3
    if getattr(raw, "spec", None):  # vLLM's speculative keys
        from servesim.accounting.speculative import bench_spec_keys

        res.update(bench_spec_keys(raw.spec))
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
    plain Python values, for writers that stream them (a million requests' token gaps are never
    held at once)."""
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
