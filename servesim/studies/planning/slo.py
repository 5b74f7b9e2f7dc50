"""SLO targets (percentiles of TTFT/TPOT/E2EL) and the check of a run's summary against them."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from servesim.specs.common import SpecError

_STAT = {"mean": "mean", "p50": "median", "median": "median", "p90": "p90", "p95": "p95",
         "p99": "p99", "p99.9": "p99_9"}  # fmt: skip


def slo_targets(slo: Mapping[str, Any]) -> list[tuple[str, str, float]]:
    """{"ttft_ms": {"p90": 500}} -> [("ttft_ms", "p90", 500.0)] (validated)."""
    out = []
    for metric, entry in (slo or {}).items():
        if metric not in ("ttft_ms", "tpot_ms", "e2el_ms") or not isinstance(entry, Mapping):
            raise SpecError(
                "plan",
                f"slo.{metric}",
                entry,
                "metric one of ttft_ms, tpot_ms, e2el_ms with {percentile: ms}",
            )
        for pct, ms in entry.items():
            bad = not isinstance(ms, (int, float)) or isinstance(ms, bool)
            if pct not in _STAT or bad or not math.isfinite(ms) or ms <= 0:
                raise SpecError(
                    "plan",
                    f"slo.{metric}.{pct}",
                    ms,
                    "percentile one of " + ", ".join(_STAT) + " and a positive ms target",
                )
            out.append((metric, str(pct), float(ms)))
    if not out:
        raise SpecError("plan", "slo", slo, "at least one target, e.g. --slo-tpot-p99 50")
    return out


def slo_check(summary: Mapping[str, Any], targets) -> tuple[bool, list[str], float]:
    """(all met, failure texts, smallest headroom = min(target/value) - 1)."""
    fails, head = [], math.inf
    for metric, pct, ms in targets:
        value = summary.get(f"{metric}_{_STAT[pct]}")
        if value is None or not math.isfinite(float(value)):
            fails.append(f"{metric[:-3].upper()} {pct} missing")
            head = min(head, -1.0)
            continue
        head = min(head, ms / max(float(value), 1e-9) - 1.0)
        if float(value) > ms:
            fails.append(f"{metric[:-3].upper()} {pct} {float(value):.0f} ms > {ms:g}")
    done, total = summary.get("completed"), summary.get("num_requests")
    if done is not None and total and done < total:
        fails.append(f"{summary['num_requests'] - summary['completed']} requests unfinished")
    return not fails, fails, head
