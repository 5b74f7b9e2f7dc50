"""Simulate one deployment over a day: one steady-state window per rate level (planning.day)."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from servesim.studies.planning.day import DayProfile, DayStats, Level, weighted_percentile

LATENCY_METRICS = ("ttft_ms", "tpot_ms", "e2el_ms")
_PCT = {"mean": None, "median": 50.0, "p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0,
        "p99.9": 99.9}  # fmt: skip
_STAT = {"mean": "mean", "p50": "median", "median": "median", "p90": "p90", "p95": "p95",
         "p99": "p99", "p99.9": "p99_9"}  # fmt: skip


def samples_runner(config: Mapping[str, Any]) -> dict[str, Any]:
    """The engine's summary plus the per-request latencies (ms) under ``_samples``."""
    from servesim.result import simulate

    res = simulate(dict(config))
    out = dict(res.summary)
    r = res.requests
    out["_samples"] = {
        "ttft_ms": r["ttft_s"].to_numpy(np.float64) * 1e3,
        "tpot_ms": r["tpot_s"].to_numpy(np.float64) * 1e3,
        "e2el_ms": r["e2el_s"].to_numpy(np.float64) * 1e3,
    }
    return out


def level_config(cfg: Mapping[str, Any], scale: float, n: int,
                 floor: int | None = None) -> dict[str, Any]:  # fmt: skip
    """The peak-rate config at ``scale`` x its rate (a trace: replayed ``scale`` x slower). With
    ``floor`` (autoscaling), every pool keeps ceil(instances x scale) instances, at least floor."""
    out = copy.deepcopy(dict(cfg))
    if floor is not None:
        for pool in out["deployment"]["pools"]:
            pool["instances"] = max(floor, math.ceil(pool["instances"] * scale - 1e-9))
    wl = out["workload"]
    if "arrivals" in wl:
        wl["arrivals"]["rate"] = float(wl["arrivals"]["rate"]) * scale
    else:
        wl["trace"]["speedup"] = float(wl["trace"].get("speedup") or 1.0) * scale
    wl["num_requests"] = int(n)
    return out


def simulate_day(cfg: Mapping[str, Any], levels: list[Level], peak: Mapping[str, Any],
                 runner: Callable[[Mapping[str, Any]], Mapping[str, Any]], n: int,
                 targets, devices: int, idle_w_per_device: float, pue: float,
                 mean_isl: float, mean_osl: float, floor: int | None = None) -> DayStats:  # fmt: skip
    """The day's figures of one deployment. ``peak``: the summary already simulated at the first
    (highest) level; every other level is simulated once for ``n`` requests. ``floor`` given:
    the autoscaled fleet (each level with the replicas the policy keeps up; idle hours draw the
    idle power of ``floor`` replicas' share of the devices)."""
    top = levels[0].rate
    summaries = [peak] + [runner(level_config(cfg, lv.rate / top, n, floor)) for lv in levels[1:]]
    busy = energy = 0.0
    rows = []
    for lv, s in zip(levels, summaries):
        secs = 3600.0 * len(lv.hours)
        frac = _busy_fraction(s)
        # busy time per request of the level's window, times the requests its hours carry (each
        # hour at its own rate, below the level's top rate), at most every device all the time
        per_req = _busy_per_request(s, devices)
        busy += (
            min(per_req * lv.requests, devices * secs)
            if per_req is not None
            else frac * devices * secs
        )
        power = s.get("power_avg_W")
        energy += (float(power) if power is not None else idle_w_per_device * devices * pue) * secs
        rows.append({"rate_rps": lv.rate, "hours": list(lv.hours), "requests": lv.requests,
                     "busy_fraction": frac, "goodput_fraction": s.get("goodput_fraction"),
                     **{k: s.get(k) for k in _keys(targets)}})  # fmt: skip
    idle_hours = 24 - sum(len(lv.hours) for lv in levels)
    idle_devices = devices if floor is None else devices * min(floor, 1)
    energy += idle_w_per_device * idle_devices * pue * 3600.0 * idle_hours
    requests = sum(lv.requests for lv in levels)
    return DayStats(
        requests=requests,
        tokens_in=requests * mean_isl,
        tokens_out=requests * mean_osl,
        busy_device_s=busy,
        energy_kwh=energy / 3.6e6,
        latency=_day_latency(levels, summaries, targets),
        attainment=_attainment(levels, summaries),
        level_rows=rows,
    )


def _busy_per_request(s: Mapping[str, Any], devices: int) -> float | None:
    done, busy = s.get("completed") or s.get("num_requests"), s.get("device_busy_s")
    return float(busy) / float(done) if done and busy is not None else None


def _busy_fraction(s: Mapping[str, Any]) -> float:
    dev, busy = s.get("device_s"), s.get("device_busy_s")
    if dev and busy is not None:
        return min(float(busy) / float(dev), 1.0)
    return float(s.get("busy_fraction") or 0.0)


def _keys(targets) -> list[str]:
    keys = [f"{m}_{_STAT[p]}" for m, p, _ in targets]
    return list(dict.fromkeys(keys))


def _day_latency(levels, summaries, targets) -> dict[str, float]:
    """Day percentiles: the levels' request samples weighted by the requests each level stands
    for; a runner without samples gives the worst level's value (an upper bound)."""
    out = {}
    for key in _keys(targets) + ["ttft_ms_p90", "tpot_ms_p90", "e2el_ms_p99"]:
        metric, _, stat = key.rpartition("_ms_")
        metric += "_ms"
        q = {"median": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p99_9": 99.9}.get(stat)
        have = all("_samples" in s for s in summaries)
        if have and q is not None:
            vals = np.concatenate([s["_samples"][metric] for s in summaries])
            w = np.concatenate([np.full(len(s["_samples"][metric]),
                                        lv.requests / max(len(s["_samples"][metric]), 1))
                                for lv, s in zip(levels, summaries)])  # fmt: skip
            out[key] = weighted_percentile(vals, w, q)
        else:
            got = [float(s[key]) for s in summaries if s.get(key) is not None]
            out[key] = max(got) if got else math.nan
    return out


def _attainment(levels, summaries) -> float | None:
    got = [(lv.requests, s.get("goodput_fraction")) for lv, s in zip(levels, summaries)]
    if any(g is None for _, g in got):
        return None
    total = sum(r for r, _ in got)
    return float(sum(r * float(g) for r, g in got) / total) if total else None


def profile_summary(profile: DayProfile, levels: list[Level], mean_rps: float) -> dict[str, Any]:
    return {
        "pattern": profile.pattern,
        "hourly_weights": [round(w, 6) for w in profile.weights],
        "peak_to_mean": profile.peak_to_mean,
        "mean_rps": mean_rps,
        "idle_hours": [h for h in range(24) if profile.weights[h] == 0],
        "levels": [{"rate_rps": lv.rate, "hours": list(lv.hours)} for lv in levels],
    }
