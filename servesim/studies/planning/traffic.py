"""The planner's traffic: the design rate it simulates (the peak hour's), the mean rate, the
lengths and the workload block of a confirming run, from a rate, tokens per day or a trace, with
the day's profile, rate levels and autoscaling policy (docs/planning.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from servesim.specs.common import SpecError
from servesim.studies.planning.day import autoscale_policy, day_profile, levels


def _num_requests(a: Mapping[str, Any], rate: float) -> int:
    """Requests per confirming run: given, or a minute of traffic at the design rate within
    [300, 2000] (a run much shorter than a minute hides queueing at high rates)."""
    if a.get("num_requests"):
        return int(a["num_requests"])
    return int(min(max(300, math.ceil(rate * 60.0)), 2000))


def _traffic(a: Mapping[str, Any]) -> dict[str, Any]:
    """Design rate (req/s, what is simulated), mean rate, lengths and the workload block."""
    for key in ("rate", "tokens_per_day", "speedup"):
        v = a.get(key)
        if v is not None and not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise SpecError("plan", key, v, "must be a positive number")
    if a.get("trace"):
        return _trace_traffic(a)
    isl, osl = int(a["isl"]), int(a["osl"])
    if isl < 1 or osl < 1:
        raise SpecError("plan", "isl/osl", f"{isl}/{osl}", "must be whole numbers >= 1")
    pat = day_profile(a["pattern"], a.get("hourly"))
    if a.get("rate"):
        avg = float(a["rate"])
    elif a.get("tokens_per_day"):
        avg = float(a["tokens_per_day"]) / 86400.0 / (isl + osl)
    else:
        raise SpecError("plan", "workload", None, "give --tokens-per-day, --rate or --trace")
    design = avg * pat.peak_to_mean
    arrivals: dict[str, Any] = {"process": pat.process, "rate": design}
    if pat.cv is not None:
        arrivals["cv"] = pat.cv
    lengths = a.get("lengths") or {
        "input": {"dist": "fixed", "mean": isl},
        "output": {"dist": "fixed", "mean": osl},
    }
    wl = {"arrivals": arrivals, "lengths": lengths, "num_requests": _num_requests(a, design)}
    return {"design_rps": design, "avg_rps": avg, "isl": isl, "osl": osl, "workload": wl,
            **_day(a, pat, avg)}  # fmt: skip


def _trace_traffic(a: Mapping[str, Any]) -> dict[str, Any]:
    """A trace of a day or more: its hourly shape (arrivals binned by hour, folded onto one day);
    a shorter one: its mean rate held over the day. The confirming run replays it sped up to the
    peak hour's rate; other levels replay it at theirs (the trace's own requests and lengths)."""
    from servesim.studies.planning.day import trace_profile
    from servesim.workload.traces import frame_stats, load_trace

    df = load_trace(a["trace"])
    st = frame_stats(df)
    speed = float(a.get("speedup") or 1.0)
    prof = trace_profile(df["arrival_s"].to_numpy()) or day_profile("flat")
    rate = float(st["rate_rps"]) * speed
    if not math.isfinite(rate) or rate <= 0:  # every request at one instant: no rate
        raise SpecError("plan", "trace", str(a["trace"]),
                        "spans no time (all requests arrive at once): its rate is undefined")  # fmt: skip
    design = rate * prof.peak_to_mean
    n = _num_requests(a, design)
    wl = {"trace": {"path": str(a["trace"]), "speedup": speed * prof.peak_to_mean},
          "num_requests": n}  # fmt: skip
    return {"design_rps": design, "avg_rps": rate, "isl": st["input_mean"],
            "osl": st["output_mean"], "workload": wl, **_day(a, prof, rate)}  # fmt: skip


def _day(a: Mapping[str, Any], profile: Any, avg: float) -> dict[str, Any]:
    return {"profile": profile, "levels": levels(profile, avg),
            "policy": autoscale_policy(a.get("autoscale"))}  # fmt: skip
