"""Caps on the counts that allocate memory or simulated time: checked once the whole config is
parsed, before anything is built, so a typo like ``num_requests: 1e9`` or ``rate: 5e-324`` is one
error line instead of an hour of swapping or a run that reports nonsense.

The configurable caps are keys of the ``sim:`` block (defaults above the largest runs asked of
servesim: a million requests, a simulated week of trace); the fixed ones follow from the engine's
data layout. docs/reliability.md lists them all.
"""

from __future__ import annotations

from typing import Any

from servesim.specs.common import SpecError

# Configurable (sim.<key>): defaults and the text of the error's "how to raise it".
DEFAULT_MAX_REQUESTS = 10_000_000  # 10x the largest benchmarked run (1M requests)
DEFAULT_MAX_DURATION_S = 31 * 86400.0  # a month of simulated time (the Azure 2024 traces: a week)
# Fixed: a synthetic prompt's prefix hash ids live in a namespace of 2^20 blocks of 16 tokens
# (workload/synthetic.py), so no synthetic request may be longer; no model's context is either.
MAX_REQUEST_TOKENS = 1 << 24
# Fixed: hash blocks of all shared prefixes, allocated up front (groups x shared_tokens / 16).
MAX_PREFIX_BLOCKS = 1 << 22
MAX_INSTANCES = 100_000  # instances of one pool (each is an object with its own KV manager)
MAX_PARALLEL = 65_536  # tp, pp, ep, dp_attn each (the largest scale-up domains are 576 devices)
MAX_BATCH = 2**31 - 1  # max_num_seqs, max_num_batched_tokens: the step log's int32 columns


def _raise(where: str, field: str, value: Any, what: str, cap_key: str | None, cap: Any) -> None:
    shown = f"{cap:,}" if isinstance(cap, int) else f"{cap:g}"
    if cap_key:
        how = f"over the cap sim.{cap_key} = {shown}; raise sim.{cap_key} to allow it"
    else:
        how = f"over the fixed cap of {shown} (docs/reliability.md)"
    raise SpecError(where, field, value, f"{what} {how}")


def check_limits(cfg: Any) -> None:
    """SpecError for the first count of ``cfg`` (a RunConfig) past its cap."""
    where, sim, wl = cfg.source, cfg.sim, cfg.workload
    max_n, max_t = sim.max_requests, sim.max_duration_s
    for i, pool in enumerate(cfg.deployment.pools):
        if pool.instances > MAX_INSTANCES:
            _raise(where, f"deployment.pools.{i}.instances", pool.instances, "instances",
                   None, MAX_INSTANCES)  # fmt: skip
    if wl.num_requests is not None and wl.num_requests > max_n:
        _raise(where, "workload.num_requests", wl.num_requests, "requests", "max_requests", max_n)
    if wl.duration_s is not None and wl.duration_s > max_t:
        _raise(where, "workload.duration_s", wl.duration_s, "simulated seconds",
               "max_duration_s", max_t)  # fmt: skip
    if wl.arrivals is not None:
        _check_rate(wl, where, max_n, max_t)
    if wl.clients is not None and wl.clients.concurrency > max_n:
        _raise(where, "workload.clients.concurrency", wl.clients.concurrency, "clients",
               "max_requests", max_n)  # fmt: skip
    _check_synthetic(wl, where, max_n)


def _check_rate(wl: Any, where: str, max_n: int, max_t: float) -> None:
    """The arrival rate with the count and the duration: the run must fit both caps."""
    rate = wl.arrivals.mean_rate
    field = "workload.arrivals.rate"
    if wl.num_requests is not None and wl.duration_s is None:
        span = wl.num_requests / rate if rate > 0 else float("inf")  # rate may underflow to 0
        if not span <= max_t:  # also catches inf from a subnormal rate
            _raise(where, field, wl.arrivals.rate,
                   f"{wl.num_requests:,} requests at this rate span {span:.3g} simulated s,",
                   "max_duration_s", max_t)  # fmt: skip
    if wl.duration_s is not None and wl.num_requests is None:
        expected = rate * wl.duration_s
        if expected > max_n:
            _raise(where, field, wl.arrivals.rate,
                   f"{wl.duration_s:g} s at this rate is {expected:.3g} requests,",
                   "max_requests", max_n)  # fmt: skip


def _check_synthetic(wl: Any, where: str, max_n: int) -> None:
    if wl.prefix is not None:
        p = wl.prefix
        if p.shared_tokens > MAX_REQUEST_TOKENS:
            _raise(where, "workload.prefix.shared_tokens", p.shared_tokens, "tokens", None,
                   MAX_REQUEST_TOKENS)  # fmt: skip
        if p.groups > max_n:
            _raise(where, "workload.prefix.groups", p.groups, "groups", "max_requests", max_n)
        blocks = p.groups * (p.shared_tokens // 16)
        if blocks > MAX_PREFIX_BLOCKS:
            _raise(where, "workload.prefix", f"{p.groups} groups x {p.shared_tokens} tokens",
                   f"{blocks:,} shared prefix blocks of 16 tokens,", None,
                   MAX_PREFIX_BLOCKS)  # fmt: skip
    if wl.sessions is not None:
        s = wl.sessions
        if s.concurrent > max_n:
            _raise(where, "workload.sessions.concurrent", s.concurrent, "sessions",
                   "max_requests", max_n)  # fmt: skip
    lengths = wl.lengths
    for side in ("input", "output"):
        dist = getattr(lengths, side, None) if lengths is not None else None
        if dist is None:
            continue
        for key in ("mean", "max", "min"):
            value = getattr(dist, key, None)
            if value is not None and value > MAX_REQUEST_TOKENS:
                _raise(where, f"workload.lengths.{side}.{key}", value, "tokens", None,
                       MAX_REQUEST_TOKENS)  # fmt: skip
