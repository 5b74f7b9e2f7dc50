"""Collectives of training over a hierarchy: a scale-up domain (NVLink/NVSwitch, NVL72, ICI)
inside, the scale-out network (one NIC per device) between domains.

A group of n devices with g of them in each scale-up domain (N = n/g domains) reduces in two
levels, as NCCL's hierarchical algorithms and Megatron's rank order make it: inside the domain a
reduce-scatter over g devices (scale-up link), then each device reduces its 1/g share with its
peers in the other N-1 domains over its own NIC, then the mirror all-gather. Bandwidth terms:

    all-reduce      2(g-1)/g * S / B_up + 2(N-1)/N * (S/g) / B_out
    reduce-scatter / all-gather: half of that (S is the full buffer, as in servesim.cost.comm)

so the scale-out part sees the domain's g NICs together. g = 1 (one member per domain, e.g. the
data-parallel group under TP 8 on 8-GPU nodes) is the flat ring over NICs, g = n the NVLink ring.
Link efficiencies and latencies are the profile's (comm_scaleup, comm_scaleout, latency_us,
comm_launch_s), the same the serving collectives use.
"""

from __future__ import annotations

import math

from servesim.cost.roofline import params
from servesim.specs.hardware import HardwareSpec


def _bw(hw: HardwareSpec) -> tuple[float, float]:
    e = params(hw)
    return hw.scaleup_bw_GBps * 1e9 * e["comm_scaleup"], hw.scaleout_bw_GBps * 1e9 * e[
        "comm_scaleout"
    ]


def members_per_domain(hw: HardwareSpec, n: int, stride: int) -> int:
    """Members of an n-device group inside one scale-up domain when consecutive members are
    ``stride`` ranks apart (Megatron's order: TP innermost, then CP, then DP/EP, then PP)."""
    return max(1, min(n, hw.scaleup_devices // max(stride, 1)))


def allreduce(hw: HardwareSpec, bytes_: float, n: int, g: int) -> float:
    """Two-level all-reduce of a ``bytes_`` buffer over n devices, g per scale-up domain."""
    if n <= 1 or bytes_ <= 0:
        return 0.0
    return 2.0 * _half(hw, bytes_, n, g)


def reduce_scatter(hw: HardwareSpec, bytes_: float, n: int, g: int) -> float:
    """Two-level reduce-scatter (or all-gather) of a ``bytes_`` buffer: half an all-reduce."""
    if n <= 1 or bytes_ <= 0:
        return 0.0
    return _half(hw, bytes_, n, g)


all_gather = reduce_scatter


def _half(hw: HardwareSpec, bytes_: float, n: int, g: int) -> float:
    up, out = _bw(hw)
    g = max(1, min(g, n))
    domains = math.ceil(n / g)
    t = (g - 1) / g * bytes_ / up + (g - 1) * hw.scaleup_latency_us * 1e-6
    if domains > 1:
        t += (domains - 1) / domains * (bytes_ / g) / out
        t += min(domains - 1, 2 * math.ceil(math.log2(domains))) * hw.scaleout_latency_us * 1e-6
    return t + params(hw)["comm_launch_s"]


def expected_distinct(bins: int, picks: float) -> float:
    """Expected distinct bins hit when ``picks`` picks fall uniformly on ``bins`` bins."""
    if bins <= 0 or picks <= 0:
        return 0.0
    return bins * (1.0 - (1.0 - 1.0 / bins) ** picks)


def moe_alltoall(hw: HardwareSpec, tokens: float, row_bytes: float, topk: int, ep: int,
                 g: int) -> float:  # fmt: skip
    """One dispatch (or combine) of ``tokens`` tokens of ``row_bytes`` each to their ``topk``
    experts spread evenly over ``ep`` devices, g per scale-up domain. Like DeepEP's normal mode,
    a token crosses the scale-out network once per remote domain that holds one of its experts
    and is fanned out inside the domain over the scale-up link; the two links run in parallel."""
    if ep <= 1 or tokens <= 0:
        return 0.0
    up, out = _bw(hw)
    g = max(1, min(g, ep))
    domains = math.ceil(ep / g)
    # copies per token to other devices of this domain and to other domains
    local_dev = expected_distinct(ep, topk) * (g - 1) / ep
    t_up = tokens * row_bytes * local_dev / up
    t = t_up + hw.scaleup_latency_us * 1e-6
    if domains > 1:
        remote_domains = expected_distinct(domains, topk) * (domains - 1) / domains
        t_out = tokens * row_bytes * remote_domains / out
        # forwarded copies ride the scale-up link on the receiving side too
        remote_fan = expected_distinct(ep, topk) * (ep - g) / ep
        t = max(t_up + tokens * row_bytes * remote_fan / up, t_out) + hw.scaleout_latency_us * 1e-6
    return t + params(hw)["comm_launch_s"]
