"""The largest request rate (or concurrency) a deployment sustains under its SLO, by bisection.

Each probe simulates the config at one load (``workload.arrivals.rate`` or
``workload.clients.concurrency``); the load doubles from the start until a probe misses the SLO,
then the bracket is halved until it is within ``rel_tol``. This assumes what vLLM's
`bench sweep serve_sla` assumes: attainment falls as load rises (one crossing). Each rate probe
runs a minute of traffic (300 to 2,000 requests) unless ``num_requests`` is given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from servesim.specs.common import SpecError

Probe = Callable[[Any, Mapping[str, Any]], Mapping[str, Any]]


def _default_probe(config: Any, overrides: Mapping[str, Any]) -> Mapping[str, Any]:
    from servesim.result import simulate

    return simulate(config, overrides=overrides).summary


def capacity(config: Any, *, by: str = "rate", slo: Mapping[str, Any] | None = None,
             start: float | None = None, rel_tol: float = 0.05, max_sims: int = 14,
             num_requests: int | None = None, probe: Probe | None = None) -> dict[str, Any]:  # fmt: skip
    """{"by", "max_value" (None if even the smallest load misses), "bracket", "probes"}."""
    from servesim.result import resolve_config
    from servesim.specs.config import config_to_dict
    from servesim.studies.planning.slo import slo_check, slo_targets

    if by not in ("rate", "concurrency"):
        raise SpecError("capacity", "by", by, "one of rate, concurrency")
    if not 0 < rel_tol < 1:
        raise SpecError("capacity", "rel_tol", rel_tol, "a fraction in (0, 1)")
    cfg = resolve_config(config)
    data = config_to_dict(cfg)
    targets = slo_targets(slo if slo is not None else data.get("slo"))
    key = "workload.arrivals.rate" if by == "rate" else "workload.clients.concurrency"
    wl = data.get("workload") or {}
    if start is None:
        start = (wl.get("arrivals") or {}).get("rate") if by == "rate" else None
        start = start or (wl.get("clients") or {}).get("concurrency") or 1.0
    base = {"workload.num_requests": int(num_requests)} if num_requests else {}
    run = probe or _default_probe
    probes: list[dict[str, Any]] = []

    def test(x: float) -> bool:
        v = int(round(x)) if by == "concurrency" else float(x)
        extra = dict(base)
        if by == "rate" and not num_requests:
            # a minute of traffic at the probed rate, 300 to 2,000 requests: a short burst of
            # requests at a high rate finishes before a queue builds and hides the overload
            extra["workload.num_requests"] = int(min(max(300, v * 60.0), 2000))
        s = run(cfg, {**extra, key: v})
        ok, fails, head = slo_check(s, targets)
        probes.append({by: v, "meets_slo": ok, "headroom": head, "fails": fails,
                       "output_throughput": s.get("output_throughput"),
                       "request_throughput": s.get("request_throughput")})  # fmt: skip
        return ok

    lo, hi = 0.0, float(start)
    while len(probes) < max_sims and test(hi):
        lo, hi = hi, hi * 2.0
    if lo == 0.0 and len(probes) < max_sims:  # the start missed: halve down to a passing load
        while len(probes) < max_sims and hi > 1e-6:
            hi_new = hi / 2.0
            if by == "concurrency" and hi_new < 1:
                break
            if test(hi_new):
                lo = hi_new
                break
            hi = hi_new
    step = 1.0 if by == "concurrency" else 0.0
    while lo > 0 and len(probes) < max_sims and hi - lo > max(rel_tol * hi, step):
        mid = (lo + hi) / 2.0
        if by == "concurrency":
            mid = float(int(mid))
            if mid <= lo:
                break
        if test(mid):
            lo = mid
        else:
            hi = mid
    best = max((p[by] for p in probes if p["meets_slo"]), default=None)
    return {"by": by, "max_value": best, "bracket": [lo, hi], "probes": probes,
            "slo": [f"{m} {p} <= {ms:g}" for m, p, ms in targets],
            "converged": lo > 0 and hi - lo <= max(rel_tol * hi, step)}  # fmt: skip


def format_capacity(res: Mapping[str, Any]) -> str:
    unit = "req/s" if res["by"] == "rate" else "concurrent requests"
    lines = []
    if res["max_value"] is None:
        lines.append(f"no {res['by']} tried meets the SLO ({', '.join(res['slo'])}); "
                     f"closest: {res['probes'][-1]['fails'] if res['probes'] else '-'}")  # fmt: skip
    else:
        tail = "" if res["converged"] else " (not converged: raise --max-sims)"
        lines.append(f"largest {res['by']} meeting the SLO: {res['max_value']:.4g} {unit} "
                     f"(bracket {res['bracket'][0]:.4g} - {res['bracket'][1]:.4g}){tail}")  # fmt: skip
    for p in res["probes"]:
        ok = "meets" if p["meets_slo"] else "misses: " + "; ".join(p["fails"])
        lines.append(f"  {res['by']} {p[res['by']]:.4g}: {ok}")
    return "\n".join(lines)
