"""Collectives and transfers (alpha-beta): all-reduce, all-gather, all-to-all, p2p, link transfer.

Per device, seconds, SI. A group of ``n`` devices is placed on as few nodes as possible: it uses
the scale-up link (NVLink/NVSwitch, Infinity Fabric, ICI, ...) while it fits in one scale-up
domain; once it spans domains, ring traffic crosses the scale-out NICs (one per device), which
then set the bandwidth. Efficiencies ``comm_scaleup`` / ``comm_scaleout`` scale the datasheet
bandwidths (``p2p_scaleup`` / ``p2p_scaleout`` for point-to-point sends, which keep links busier
than a ring's reduce steps); ``comm_launch_s`` is the fixed cost of one collective call as
profilers measure it (an eager call from the host). Inside an engine step the collectives are
captured in a CUDA graph (vLLM, SGLang and TensorRT-LLM all do so for decode) and that host cost
is not paid: the step cost passes ``graph=True``, which charges ``comm_graph_launch_s`` instead.

All-reduce is NCCL's ring (bandwidth term 2(n-1)/n * bytes); its latency term is the smaller of
the ring's 2(n-1) hops and a tree's 2*ceil(log2 n) hops, as NCCL switches to trees for small
messages on large groups.
"""

from __future__ import annotations

import math

from servesim.cost.roofline import params
from servesim.specs.hardware import HardwareSpec


def _placement(hw: HardwareSpec, n: int, per_domain: int | None) -> tuple[int, int]:
    """(devices per scale-up domain, domains) of a group of n devices."""
    per = min(n, per_domain or hw.scaleup_devices)
    return per, math.ceil(n / per)


def _link(hw: HardwareSpec, n: int, per_domain: int | None = None) -> tuple[float, float]:
    """(bottleneck bandwidth in bytes/s, per-hop latency in s) of a ring over n devices."""
    up_bw = hw.scaleup_bw_GBps * 1e9 * params(hw)["comm_scaleup"]
    _, domains = _placement(hw, n, per_domain)
    if domains == 1:
        return up_bw, hw.scaleup_latency_us * 1e-6
    out_bw = hw.scaleout_bw_GBps * 1e9 * params(hw)["comm_scaleout"]
    return min(up_bw, out_bw), hw.scaleout_latency_us * 1e-6


def _launch(hw: HardwareSpec, graph: bool) -> float:
    """Fixed cost of one collective: eager (as profiled) or inside a captured graph."""
    return params(hw)["comm_graph_launch_s" if graph else "comm_launch_s"]


def _hops(n: int) -> int:
    """Latency hops of one reduce-scatter or all-gather pass: ring n-1, tree ceil(log2 n)."""
    return min(n - 1, math.ceil(math.log2(n)))


def allreduce_time(
    hw: HardwareSpec, bytes_: float, n: int, *, per_domain: int | None = None, graph: bool = False
) -> float:
    """All-reduce of a ``bytes_`` buffer over n devices: 2(n-1)/n * bytes / bw + latency.

    ``per_domain``: devices of the group per scale-up domain (default: packed, as many as fit).
    """
    if n <= 1 or bytes_ <= 0:
        return 0.0
    bw, lat = _link(hw, n, per_domain)
    hop = params(hw)["comm_hop_s"]
    if hop > 0.0 and _placement(hw, n, per_domain)[1] == 1:
        # fitted: NCCL's ring inside one domain, 2(n-1) hops (its small-message LL protocol)
        return 2.0 * (n - 1) / n * bytes_ / bw + 2 * (n - 1) * hop + _launch(hw, graph)
    return 2.0 * (n - 1) / n * bytes_ / bw + 2 * _hops(n) * lat + _launch(hw, graph)


def allgather_time(
    hw: HardwareSpec, bytes_: float, n: int, *, per_domain: int | None = None, graph: bool = False
) -> float:
    """Ring all-gather; ``bytes_`` is the gathered total (each device ends with all of it)."""
    if n <= 1 or bytes_ <= 0:
        return 0.0
    bw, lat = _link(hw, n, per_domain)
    return (n - 1) / n * bytes_ / bw + (n - 1) * lat + _launch(hw, graph)


def alltoall_time(
    hw: HardwareSpec, bytes_: float, n: int, *, per_domain: int | None = None, graph: bool = False
) -> float:
    """All-to-all; ``bytes_`` is what one device sends in total (1/n of it stays local).

    Traffic to peers in the same scale-up domain uses the scale-up link, the rest the NIC; the
    two proceed in parallel, so the slower part sets the time.
    """
    if n <= 1 or bytes_ <= 0:
        return 0.0
    per, domains = _placement(hw, n, per_domain)
    up_bw = hw.scaleup_bw_GBps * 1e9 * params(hw)["comm_scaleup"]
    local = bytes_ * (per - 1) / n
    seconds = local / up_bw
    lat = hw.scaleup_latency_us * 1e-6
    if domains > 1:
        out_bw = hw.scaleout_bw_GBps * 1e9 * params(hw)["comm_scaleout"]
        seconds = max(seconds, bytes_ * (n - per) / n / out_bw)
        lat = hw.scaleout_latency_us * 1e-6
    return seconds + lat + _launch(hw, graph)


def tp_allreduce_time(hw: HardwareSpec, bytes_: float, n: int, engine=None) -> float:
    """The TP all-reduce of an engine step (inside a CUDA graph). With an engine whose custom
    all-reduce applies (group inside one scale-up domain, at most ``ar_max_devices`` devices,
    message at most ``ar_max_bytes``), its fitted one-shot/two-shot model; else NCCL's."""
    if n <= 1 or bytes_ <= 0:
        return 0.0
    e = engine
    if (
        e is None
        or e.allreduce != "custom"
        or n > min(e.ar_max_devices, hw.scaleup_devices)
        or bytes_ > e.ar_max_bytes
    ):
        return allreduce_time(hw, bytes_, n, graph=True)
    p = params(hw)
    if p["car_scaleup"] > 0.0:  # the profile's own fit (per engine where it has an overlay)
        # fitted as the faster of one-shot and two-shot (fitted_custom_allreduce_time), so used so
        return custom_allreduce_time(hw, bytes_, n, p["car_base_s"], p["car_peer_s"],
                                     p["car_scaleup"])  # fmt: skip
    oneshot = getattr(e, "ar_oneshot_max_bytes", 0.0)
    return custom_allreduce_time(hw, bytes_, n, e.ar_base_s, e.ar_peer_s, e.ar_bw_eff, oneshot)


# Messages above this go to NCCL in vLLM (custom_all_reduce.py max_size 8 MiB), SGLang (same
# kernel family) and TensorRT-LLM's AUTO strategy (estimate: same cap); engines.py uses the same.
CUSTOM_AR_MAX_BYTES = 8 * 2**20


def fitted_custom_allreduce_time(hw: HardwareSpec, bytes_: float, n: int, graph: bool) -> float:
    """An engine's TP all-reduce with the profile's fitted custom-all-reduce keys (``car_*``), as
    aiconfigurator times it: custom kernel up to CUSTOM_AR_MAX_BYTES, NCCL above; an eager call
    (not in a CUDA graph) adds ``car_eager_s`` of host work."""
    if n <= 1 or bytes_ <= 0:
        return 0.0
    if bytes_ > CUSTOM_AR_MAX_BYTES or n > hw.scaleup_devices:
        return allreduce_time(hw, bytes_, n, graph=graph)
    p = params(hw)
    t = custom_allreduce_time(hw, bytes_, n, p["car_base_s"], p["car_peer_s"], p["car_scaleup"])
    return t if graph else t + p["car_eager_s"]


def custom_allreduce_time(
    hw: HardwareSpec,
    bytes_: float,
    n: int,
    base_s: float,
    peer_s: float,
    bw_eff: float,
    oneshot_max_bytes: float = 0.0,
) -> float:
    """Custom (peer-to-peer over NVLink) all-reduce: one-shot (every device reads every peer's
    whole buffer: (n-1) x bytes) or two-shot (reduce-scatter + all-gather: 2(n-1)/n x bytes, two
    synchronisations). vLLM and SGLang pick the faster by size; an engine with a fixed switch
    (``oneshot_max_bytes`` > 0, TensorRT-LLM) runs one-shot up to it and two-shot above."""
    bw = hw.scaleup_bw_GBps * 1e9 * bw_eff
    one = base_s + (n - 1) * peer_s + (n - 1) * bytes_ / bw
    two = 2.0 * (base_s + (n - 1) * peer_s) + 2.0 * (n - 1) / n * bytes_ / bw
    if oneshot_max_bytes > 0.0:
        return one if bytes_ <= oneshot_max_bytes else two
    return min(one, two)


def ep_alltoall(
    hw: HardwareSpec, bytes_: float, n: int, topk: int, *, low_latency: bool = False
) -> tuple[float, float]:
    """Expert-parallel dispatch or combine over n devices: (seconds, bytes put on links).

    ``bytes_``: one copy of this device's tokens' hidden states; each token goes to its ``topk``
    experts, spread uniformly over the n devices. A token is sent once per distinct destination
    device (two experts on one device share a copy). Across scale-up domains DeepEP's normal
    kernels send it once per destination *domain* over the NIC and forward it over NVLink there,
    after a notify round that exchanges the counts (one more NIC latency); its low-latency
    kernels send each copy directly over the NIC, without that round. ``low_latency``: the batch
    is small enough for them (<= 128 tokens per rank); the faster of the two modes is taken then,
    else the normal one (so the time never drops when the batch grows). The NVLink and NIC parts
    proceed in parallel: the slower sets the time.
    """
    if n <= 1 or bytes_ <= 0 or topk <= 0:
        return 0.0, 0.0
    per, domains = _placement(hw, n, None)
    p = params(hw)
    up_bw = hw.scaleup_bw_GBps * 1e9 * p["comm_scaleup"]
    hit = 1.0 - (1.0 - 1.0 / n) ** topk  # chance a given device receives a token
    up = bytes_ * (per - 1) * hit  # copies to peers in the own domain
    fixed = _launch(hw, True)
    if domains == 1:
        return up / up_bw + hw.scaleup_latency_us * 1e-6 + fixed, up
    remote_devices = (n - per) * hit  # distinct devices in other domains
    out_bw = hw.scaleout_bw_GBps * 1e9 * p["comm_scaleout"]
    lat = hw.scaleout_latency_us * 1e-6
    # normal: once per distinct remote domain, then forwarded over NVLink at the destination
    dom_hit = 1.0 - (1.0 - 1.0 / domains) ** topk
    nic = bytes_ * (domains - 1) * dom_hit
    up_n = up + bytes_ * remote_devices
    best = (max(up_n / up_bw, nic / out_bw) + 2.0 * lat + fixed, up_n + nic)
    if low_latency:  # direct: one copy per remote device
        nic_ll = bytes_ * remote_devices
        ll = (max(up / up_bw, nic_ll / out_bw) + lat + fixed, up + nic_ll)
        best = min(best, ll)
    return best


def p2p_time(
    hw: HardwareSpec, bytes_: float, *, scaleout: bool = False, graph: bool = False
) -> float:
    """One point-to-point send (pipeline stages): scale-up link, or the NIC when ``scaleout``."""
    if bytes_ <= 0:
        return 0.0
    if scaleout:
        bw = hw.scaleout_bw_GBps * 1e9 * params(hw)["p2p_scaleout"]
        lat = hw.scaleout_latency_us * 1e-6
    else:
        bw = hw.scaleup_bw_GBps * 1e9 * params(hw)["p2p_scaleup"]
        lat = hw.scaleup_latency_us * 1e-6
    return bytes_ / bw + lat + (0.0 if graph else params(hw)["p2p_launch_s"])


def link_transfer_time(bytes_: float, bandwidth_GBps: float, latency_us: float) -> float:
    """A transfer over a dedicated link (e.g. KV between prefill and decode pools)."""
    if bytes_ <= 0:
        return 0.0
    return bytes_ / (bandwidth_GBps * 1e9) + latency_us * 1e-6
