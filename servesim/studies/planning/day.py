"""A day of traffic, simulated with time compression, and what each billing model charges for it.

A day is 24 hourly rates (a traffic pattern's hourly weights times the mean rate). Hours whose
rates are within ``tol`` of each other share one *level*, simulated once at the highest rate of
its hours for a steady-state window of ``n`` requests (the time compression: each level stands
for all its hours); hours with no traffic are idle and not simulated. The day's figures are the
levels' figures weighted by the hours (busy time, energy) or by the requests (latency
percentiles) each level stands for. docs/planning.md states the error of this against a run of
the whole day (experiments/planning/day_compression.py).

Billing (HOURS_PER_MONTH = 730 h, a month is 730/24 simulated days):
- dedicated (on-demand, reserved, spot, owned): every device, every hour of the day;
- autoscaling: per interval (one profile hour) the replicas the policy keeps up (AutoscalePolicy);
- per-token: the day's input and output tokens at the API's prices, exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from servesim.specs.common import SpecError

# 8760 h / 12, the planner's month (servesim.plan.HOURS_PER_MONTH); specs.cost quotes 30.4 days
HOURS_PER_MONTH = 8760.0 / 12.0
DAYS_PER_MONTH = HOURS_PER_MONTH / 24.0
PATTERN_NAMES = ("flat", "steady", "diurnal", "business-hours", "bursty", "hourly", "trace")

# Hourly weights (mean 1). Planning assumptions, not measurements:
# - diurnal: a cosine peaking at 15:00 with peak/trough 3 (estimate: production LLM traffic swings
#   2-3x over a day, e.g. the Azure LLM inference traces studied in Splitwise, arXiv 2311.18677);
# - business-hours: the day's traffic in the 10 hours 08:00-18:00, none outside (peak 2.4 x mean);
# - bursty: three burst hours at 3 x the mean (10:00, 14:00, 20:00), the rest evenly below, with
#   gamma inter-arrivals of CV 2 inside every hour (the planner's former bursty assumption).
_DIURNAL_PEAK_TO_TROUGH = 3.0
_BUSINESS_HOURS = range(8, 18)
_BURST_HOURS = (10, 14, 20)


@dataclass(frozen=True)
class DayProfile:
    pattern: str
    weights: tuple[float, ...]  # 24 hourly rates / mean rate (mean 1)
    process: str = "poisson"  # arrivals inside an hour
    cv: float | None = None

    @property
    def peak_to_mean(self) -> float:
        return max(self.weights)


def day_profile(pattern: str, hourly: Sequence[float] | None = None) -> DayProfile:
    """The hourly weights of a named pattern, or of 24 given numbers (relative, any scale)."""
    if hourly is not None:
        w = _hourly(hourly)
        return DayProfile("hourly", tuple(float(x) for x in w))
    if pattern in ("flat", "steady"):
        return DayProfile("flat", (1.0,) * 24)
    if pattern == "diurnal":
        a = (_DIURNAL_PEAK_TO_TROUGH - 1.0) / (_DIURNAL_PEAK_TO_TROUGH + 1.0)
        w = 1.0 + a * np.cos(2.0 * np.pi * (np.arange(24) + 0.5 - 15.5) / 24.0)
        return DayProfile("diurnal", tuple(float(x) for x in w / w.mean()))
    if pattern == "business-hours":
        w = np.array([1.0 if h in _BUSINESS_HOURS else 0.0 for h in range(24)])
        return DayProfile("business-hours", tuple(float(x) for x in w / w.mean()))
    if pattern == "bursty":
        rest = (24.0 - 3.0 * len(_BURST_HOURS)) / (24 - len(_BURST_HOURS))
        w = [3.0 if h in _BURST_HOURS else rest for h in range(24)]
        return DayProfile("bursty", tuple(w), "gamma", 2.0)
    if pattern == "hourly":
        raise SpecError("plan", "hourly", None, "pattern hourly needs 24 numbers (--hourly)")
    raise SpecError("plan", "pattern", pattern, "one of " + ", ".join(PATTERN_NAMES))


def _hourly(values: Sequence[float]) -> np.ndarray:
    try:
        w = np.asarray([float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        raise SpecError("plan", "hourly", values, "24 numbers, one per hour") from None
    if w.shape != (24,) or not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
        raise SpecError(
            "plan", "hourly", list(values), "24 non-negative numbers, one per hour, not all zero"
        )
    return w / w.mean()


def trace_profile(arrival_s: np.ndarray) -> DayProfile | None:
    """Hourly weights of a trace spanning at least 23 hours (its arrivals binned by hour from its
    start, folded onto one day); None for a shorter trace (its mean rate is held over the day)."""
    t = np.asarray(arrival_s, dtype=np.float64)
    if len(t) < 2 or t.max() - t.min() < 23 * 3600.0:
        return None
    hours = ((t - t.min()) // 3600.0).astype(np.int64) % 24
    counts = np.bincount(hours, minlength=24).astype(np.float64)
    return DayProfile("trace", tuple(float(x) for x in counts / counts.mean()))


@dataclass(frozen=True)
class Level:
    rate: float  # req/s simulated (the highest hourly rate of its hours)
    hours: tuple[int, ...]
    requests: float  # requests of its hours over the day (at their own rates)


def levels(profile: DayProfile, mean_rps: float, tol: float = 0.15, max_levels: int = 6):
    """Hours grouped into at most ``max_levels`` rate levels (rates within a factor 1 + tol share
    one; tol grows until the count fits). Hours with no traffic belong to no level."""
    rates = np.asarray(profile.weights) * mean_rps
    busy = [h for h in range(24) if rates[h] > 0]
    if not busy:
        return []
    top = float(rates[busy].max())
    while True:
        groups: dict[int, list[int]] = {}
        for h in busy:
            groups.setdefault(int(math.log(top / rates[h]) // math.log1p(tol)), []).append(h)
        if len(groups) <= max_levels:
            break
        tol *= 1.5
    return [
        Level(float(rates[hs].max()), tuple(hs), float(rates[hs].sum() * 3600.0))
        for _, hs in sorted(groups.items())
    ]


# --------------------------------------------------------------------------- autoscaling


@dataclass(frozen=True)
class AutoscalePolicy:
    """How the autoscaling bill is formed (stated in every plan).

    Per interval (one profile hour), replicas up = ceil(N x rate / peak rate), at least
    ``min_replicas`` (and 1 while traffic flows), at most N (the fleet that met the SLO at the
    peak): every replica then carries at most the peak's load per replica. A replica added for an
    interval is billed ``scale_up_s`` before it (pre-warmed: boot, image pull, weight load), one
    removed is billed ``scale_down_s`` into the next interval. Cold-start latency is billed, not
    simulated: the policy scales ahead of the interval, so no request waits for a cold replica.
    """

    min_replicas: int = 0
    # estimate: node boot + container pull + weight load of a 70B-class model, about 5 minutes
    scale_up_s: float = 300.0
    # Kubernetes HPA default downscale stabilisation window, 5 minutes
    # (kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/#default-behavior)
    scale_down_s: float = 300.0
    interval_s: float = 3600.0

    def describe(self) -> str:
        return (
            f"autoscaling per {self.interval_s / 3600:g} h interval: replicas = ceil(N x rate / "
            f"peak rate), min {self.min_replicas}; +{self.scale_up_s:g} s billed before a scale-up"
            f" (cold start billed, not simulated), +{self.scale_down_s:g} s after a scale-down"
        )


def autoscale_policy(data: Mapping[str, Any] | None) -> AutoscalePolicy:
    data = dict(data or {})
    allowed = ("min_replicas", "scale_up_s", "scale_down_s")
    for k, v in data.items():
        if k not in allowed:
            raise SpecError("plan", f"autoscale.{k}", v, "unknown; allowed: " + ", ".join(allowed))
        if not isinstance(v, (int, float)) or v < 0 or (k != "min_replicas" and v >= 3600):
            raise SpecError("plan", f"autoscale.{k}", v, "a number >= 0 (seconds < 3600)")
    return AutoscalePolicy(
        **{k: (int(v) if k == "min_replicas" else float(v)) for k, v in data.items()}
    )


def autoscaled_replicas(profile: DayProfile, replicas: int, policy: AutoscalePolicy) -> list[int]:
    """Replicas up in each of the 24 intervals."""
    peak = max(profile.weights)
    out = []
    for w in profile.weights:
        n = math.ceil(replicas * w / peak - 1e-9) if w > 0 else 0
        n = max(n, policy.min_replicas, 1 if w > 0 else 0)
        out.append(min(n, replicas))
    return out


def autoscaled_replica_s(up: Sequence[int], policy: AutoscalePolicy) -> float:
    """Billed replica-seconds of one day (cyclic: hour 23 precedes hour 0)."""
    total = sum(up) * policy.interval_s
    for h, n in enumerate(up):
        prev = up[h - 1]
        total += max(0, n - prev) * policy.scale_up_s + max(0, prev - n) * policy.scale_down_s
    return float(total)


# --------------------------------------------------------------------------- the day's figures


@dataclass
class DayStats:
    """One deployment over one day (from its level simulations)."""

    requests: float  # requests per day
    tokens_in: float
    tokens_out: float
    busy_device_s: float  # of the full (dedicated) fleet
    energy_kwh: float  # facility energy of the full fleet, idle hours included
    latency: dict[str, float]  # day percentiles, e.g. ttft_ms_p90
    attainment: float | None  # share of the day's requests within every SLO target
    level_rows: list[dict[str, Any]]

    @property
    def tokens(self) -> float:
        return self.tokens_in + self.tokens_out


def weighted_percentile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The q-th percentile (0-100) of samples with weights (inverted CDF, lower value)."""
    v, w = np.asarray(values, np.float64), np.asarray(weights, np.float64)
    keep = np.isfinite(v)
    v, w = v[keep], w[keep]
    if not len(v):
        return math.nan
    order = np.argsort(v, kind="stable")
    v, cw = v[order], np.cumsum(w[order])
    return float(v[min(np.searchsorted(cw, q / 100.0 * cw[-1], side="left"), len(v) - 1)])


def billed_day_usd(usd_per_device_hour: float, devices: int, replica_s: float, replicas: int):
    """$ of one day: devices per replica x billed replica-hours x rate."""
    return usd_per_device_hour * devices / max(replicas, 1) * replica_s / 3600.0
