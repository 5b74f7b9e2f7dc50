"""Attention/FFN disaggregation: the step time from three stage times and m micro-batches, and the
expert-load imbalance factor of MoE layers.

MegaScale-Infer (arXiv 2504.02263) and Step-3 (arXiv 2507.19427) split a decode step: attention
instances hold the KV cache and run everything that lives with it; FFN instances run the dense MLP
or the experts; every layer ships the activations attention -> FFN and back. The batch is cut into
``m`` micro-batches that ping-pong, so each side works while the other one (or the network) does.

Per layer and micro-batch there are four stages on four resources, visited in this order:
attention (``t_a``), send (``t_c``), FFN (``t_f``), return (``t_c``; the link is full duplex, so the
two directions are separate resources). Every resource takes the micro-batches in the same order,
layer after layer, and a micro-batch enters layer ``l + 1`` only after its return from layer ``l``.
For this cyclic flow shop of identical jobs the makespan is, in closed form,

    T = S + (m - 1) * M + (L - 1) * max(m * M, S)        S = t_a + 2 t_c + t_f,  M = max(t_a, t_c, t_f)

``S + (m - 1) M`` is the first layer (fill: one micro-batch's round trip; then the bottleneck
stage passes the other m - 1). Each later layer adds one period: the bottleneck's m micro-batches
(``m M``) when the pipeline is throughput bound, or one round trip (``S``) when it is latency bound
(too few micro-batches to hide the ping-pong). With m = 1 and free transfers T = L (t_a + t_f): the
colocated step with the same parts. A test checks the formula against an event-by-event schedule.

Busy fractions of a side over the step are its work ``L m t`` over ``T``; balancing A:F means
making the attention and FFN fractions equal.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

from servesim.specs.common import SpecError
from servesim.specs.config import MOE_DISTRIBUTIONS as MOE_LOAD_DISTRIBUTIONS


class AFStep(NamedTuple):
    """One attention/FFN step (one decode iteration of one attention instance)."""

    seconds: float  # makespan of the L layers (no per-iteration overhead)
    period_s: float  # time one layer adds once the pipeline is full
    attention_busy: float  # fraction of ``seconds`` the attention side computes
    ffn_busy: float  # fraction of ``seconds`` the FFN side computes
    link_busy: float  # fraction of ``seconds`` each link direction carries activations
    bound: str  # attention | ffn | transfer (bottleneck stage) or latency (round trip dominates)


def af_step_time(
    attention_s: float, ffn_s: float, transfer_s: float, micro_batches: int, layers: int
) -> AFStep:
    """Makespan of ``layers`` layers of ``micro_batches`` ping-pong micro-batches.

    attention_s, ffn_s: one micro-batch through one layer on its side; transfer_s: one micro-batch's
    activations one way for one layer (latency included). All >= 0, seconds.
    """
    m, L = int(micro_batches), int(layers)
    if m < 1 or L < 1:
        raise ValueError(f"micro_batches and layers must be >= 1, got {m}, {L}")
    for name, v in (("attention_s", attention_s), ("ffn_s", ffn_s), ("transfer_s", transfer_s)):
        if not (v >= 0.0 and math.isfinite(v)):
            raise ValueError(f"{name} must be finite and >= 0, got {v!r}")
    round_trip = attention_s + 2.0 * transfer_s + ffn_s
    slowest = max(attention_s, transfer_s, ffn_s)
    period = max(m * slowest, round_trip)
    total = round_trip + (m - 1) * slowest + (L - 1) * period
    if total <= 0.0:
        return AFStep(0.0, 0.0, 0.0, 0.0, 0.0, "attention")
    if m * slowest >= round_trip:
        bound = max(
            (("attention", attention_s), ("ffn", ffn_s), ("transfer", transfer_s)),
            key=lambda kv: kv[1],
        )[0]
    else:
        bound = "latency"
    work = L * m
    return AFStep(
        total,
        period,
        work * attention_s / total,
        work * ffn_s / total,
        work * transfer_s / total,
        bound,
    )


def schedule_makespan(stage_s: list[float], micro_batches: int, layers: int) -> float:
    """Event-by-event schedule of the same cyclic flow shop (reference for tests and docs):
    each stage is one resource, taking micro-batches in order, layer after layer."""
    free = [0.0] * len(stage_s)
    done = [0.0] * micro_batches
    for _ in range(layers):
        for s, t in enumerate(stage_s):
            for j in range(micro_batches):
                done[j] = max(free[s], done[j]) + t
                free[s] = done[j]
    return max(done) if done else 0.0


def micro_batch_rows(rows: int, micro_batches: int) -> int:
    """Rows of the largest micro-batch when ``rows`` are split as evenly as possible."""
    return -(-int(rows) // int(micro_batches)) if rows > 0 else 0


@lru_cache(maxsize=64)
def af_link(model, dtypes) -> tuple[float, int, int, int]:
    """The operator list's attention/FFN link (its LINK part): (bytes per token one way, one
    layer, the mean of the directions; layers; experts; top-k)."""
    from servesim.cost.ops import LINK, model_ops
    from servesim.specs.config import Parallelism

    link = [op for op in model_ops(model, dtypes, Parallelism()).ops if op.part == LINK]
    row = sum(op.bytes_per_row for op in link) / len(link)
    return row, link[0].count, link[0].num_experts, link[0].topk


def af_activation_bytes(tokens: int, model, dtypes, ffn_ep: int = 1) -> float:
    """One way, one layer, the mean of the two directions (ops.py's ``af_dispatch``: each token in
    the activation dtype, fp8 as DeepEP; ``af_combine``: back in the 16-bit hidden-state format),
    sent to every FFN rank holding one of its experts."""
    row, _, experts, topk = af_link(model, dtypes)
    copies = expected_destinations(experts, topk, ffn_ep) if experts else 1.0
    return float(tokens) * row * copies


# ------------------------------------------------------------------------------ engine step


def split_aggregates(agg: tuple, micro_batches: int) -> tuple:
    """Aggregates of the largest of ``micro_batches`` even micro-batches (every field rounded up)."""
    m = int(micro_batches)
    return agg if m == 1 else tuple(micro_batch_rows(x, m) for x in agg)


def expected_destinations(num_experts: int, topk: int, ep: int) -> float:
    """Expected EP ranks one token is sent to: ranks holding at least one of its top-k experts
    (E/ep experts per rank; k distinct experts drawn uniformly): ep (1 - C(E - E/ep, k) / C(E, k))."""
    if ep <= 1 or num_experts <= 0 or topk <= 0:
        return 1.0
    miss = 1.0
    others = num_experts - num_experts / ep
    for i in range(topk):
        miss *= max(others - i, 0.0) / (num_experts - i)
    return ep * (1.0 - miss)


def af_transfer_s(
    tokens: int,
    model,
    dtypes,
    *,
    share: float,
    attention_devices: int,
    ffn_devices: int,
    bandwidth_GBps: float,
    latency_us: float,
    ffn_ep: int = 1,
) -> float:
    """One micro-batch's activations one way through one layer.

    Each device has its own link of ``bandwidth_GBps`` (a NIC per GPU). The attention instance
    sends its tokens over its ``attention_devices`` links; an FFN instance receives ``share``
    attention instances' worth over its ``ffn_devices`` links; the slower end sets the time. A MoE
    token goes once to each FFN rank that holds one of its top-k experts (MegaScale-Infer's M2N
    dispatch); a dense FFN instance receives it once.
    """
    if tokens <= 0:
        return 0.0
    b = af_activation_bytes(tokens, model, dtypes, ffn_ep)
    bw = bandwidth_GBps * 1e9
    return max(b / (bw * attention_devices), share * b / (bw * ffn_devices)) + latency_us * 1e-6


def af_step_cost(
    attention_cost,
    ffn_cost,
    agg: tuple,
    *,
    model,
    dtypes,
    micro_batches: int,
    share: float,
    attention_devices: int,
    ffn_devices: int,
    bandwidth_GBps: float | None,
    latency_us: float,
    attention_overhead_s: float,
    ffn_overhead_s: float,
    ffn_ep: int = 1,
):
    """One step of an attention instance under attention/FFN disaggregation.

    attention_cost, ffn_cost: agg tuple -> StepCost of the attention and ffn roles (one instance
    each; the ffn one is asked for ``share`` attention instances' tokens of one micro-batch, all
    counted as decode rows: FFN operators depend on the token count only). ``bandwidth_GBps``
    None means free transfers.

    Returns (attention StepCost of the whole step, with the per-iteration overhead once; FFN
    StepCost of the FFN instance's work for this step's micro-batches, seconds = its busy time;
    AFStep). The attention row's comm_s also holds the time it waits on the FFN side and the link.
    With ``ffn_ep`` > 1 the FFN step's communication time (its EP all-to-all; with tp > 1 in the
    FFN pool also its TP all-reduce, an optimistic simplification) is left out of ``t_f``: the
    activation transfer already delivers every token to the ranks holding its experts.
    """
    m = int(micro_batches)
    mb = split_aggregates(agg, m)
    att = attention_cost(mb)
    tokens = mb[0] + mb[4]
    ffn_tokens = math.ceil(share * tokens - 1e-9)
    ffn = ffn_cost((0, 0, 0, 0, ffn_tokens, 0, 0)) if ffn_tokens > 0 else None
    L = af_link(model, dtypes)[1]  # layers: each one a round trip over the link
    t_a = max(att.seconds - attention_overhead_s, 0.0) / L
    # with EP the attention side sends each token straight to the FFN ranks holding its experts
    # (M2N), which replaces the FFN instance's own dispatch/combine all-to-all
    a2a = ffn.comm_s if ffn is not None and ffn_ep > 1 else 0.0
    t_f = max(ffn.seconds - ffn_overhead_s - a2a, 0.0) / L if ffn is not None else 0.0
    t_c = 0.0
    link_bytes = 0.0
    if bandwidth_GBps is not None and tokens > 0:
        t_c = af_transfer_s(
            tokens,
            model,
            dtypes,
            share=share,
            attention_devices=attention_devices,
            ffn_devices=ffn_devices,
            bandwidth_GBps=bandwidth_GBps,
            latency_us=latency_us,
            ffn_ep=ffn_ep,
        )
        link_bytes = 2.0 * L * m * af_activation_bytes(tokens, model, dtypes, ffn_ep)
    af = af_step_time(t_a, t_f, t_c, m, L)
    a_step = _attention_step(att, m, af.seconds + attention_overhead_s, link_bytes,
                             attention_overhead_s)  # fmt: skip
    f_step = _ffn_step(att, ffn, m, share, L * t_f * m, a2a, ffn_overhead_s)
    return a_step, f_step, af


def _attention_step(att, m: int, seconds: float, link_bytes: float, overhead_s: float):
    """The attention instance's whole step: m micro-batches of ``att``, ``seconds`` long; the
    time it neither computes nor pays overhead is waiting on the FFN side and the link (comm)."""
    busy = m * (att.compute_s + att.memory_s + att.comm_s)
    other = m * (att.overhead_s - overhead_s) + overhead_s
    wait = max(seconds - busy - other, 0.0)
    return att._replace(
        seconds=seconds,
        flops=m * att.flops,
        bytes=m * att.bytes,
        comm_bytes=m * att.comm_bytes + link_bytes,
        compute_s=m * att.compute_s,
        memory_s=m * att.memory_s,
        comm_s=m * att.comm_s + wait,
        overhead_s=other,
    )


def _ffn_step(att, ffn, m: int, share: float, f_work: float, a2a: float, ffn_overhead_s: float):
    """The FFN instance's work for one attention instance's step: m micro-batches of ``share``
    instances' tokens (``f_work`` seconds of layers), per attention instance it serves."""
    if ffn is None:
        return att._replace(
            seconds=0.0, flops=0.0, bytes=0.0, comm_bytes=0.0, compute_s=0.0, memory_s=0.0,
            comm_s=0.0, overhead_s=0.0, devices=0,
        )  # fmt: skip
    k = m / share if share > 0 else 0.0
    return ffn._replace(
        seconds=f_work / share if share > 0 else 0.0,
        flops=k * ffn.flops,
        bytes=k * ffn.bytes,
        comm_bytes=0.0 if a2a else k * ffn.comm_bytes,
        compute_s=k * ffn.compute_s,
        memory_s=k * ffn.memory_s,
        comm_s=k * (ffn.comm_s - a2a),
        overhead_s=k * (ffn.overhead_s - ffn_overhead_s),
    )


# ------------------------------------------------------------------------------ MoE load


def expert_popularity(num_experts: int, distribution: str = "uniform", zipf_s: float = 1.0):
    """Each expert's expected share of routed tokens (sums to 1), most popular first.

    uniform: 1/E each. zipf: the expert of popularity rank r gets a share proportional to r^-s
    (skewed routing as measured on real traces, e.g. the expert-load histograms of DeepSeek's
    EPLB and MoE-Lightning; s is a user parameter, not a measured constant).
    """
    if num_experts <= 0:
        return []
    if distribution == "uniform":
        return [1.0 / num_experts] * num_experts
    if distribution != "zipf":
        raise SpecError("cost", "moe_load.distribution", distribution, "uniform | zipf")
    w = [r ** (-float(zipf_s)) for r in range(1, num_experts + 1)]
    total = sum(w)
    return [x / total for x in w]


def moe_imbalance(
    num_experts: int,
    ep: int,
    distribution: str = "uniform",
    zipf_s: float = 1.0,
    factor: float | None = None,
    redundant: int = 0,
) -> float:
    """Slowest EP rank's routed tokens over the mean rank's (>= 1; 1 = balanced).

    Without redundant experts, experts are placed on the ``ep`` ranks round-robin in popularity
    order (a load-aware placement), so the rank holding the hottest expert is the slowest. With
    ``redundant`` extra expert slots (DeepSeek's EPLB, ``eplb.py``: replicate the hottest experts,
    then pack the replicas onto ranks), each slot goes to the expert with the highest load per
    replica, the replicas share its load evenly, and the replicas are packed heaviest first onto
    the least-loaded rank that still has a free slot ((E + R)/ep slots per rank). ``fixed``
    returns ``factor`` as given. With ep = 1 the one rank is the mean.
    """
    if distribution == "fixed":
        if factor is None or not factor >= 1.0:
            raise SpecError("cost", "moe_load.factor", factor, "a number >= 1")
        return float(factor)
    if ep <= 1 or num_experts <= 0:
        return 1.0
    shares = expert_popularity(num_experts, distribution, zipf_s)
    if redundant <= 0:
        ranks = [0.0] * ep
        for i, s in enumerate(shares):
            ranks[i % ep] += s
        return max(1.0, max(ranks) * ep)
    if (num_experts + redundant) % ep:
        raise SpecError(
            "cost", "moe_load.redundant_experts", redundant,
            f"experts + redundant ({num_experts} + {redundant}) must divide over ep = {ep} ranks",
        )  # fmt: skip
    copies = [1] * num_experts
    for _ in range(redundant):  # replicate the expert with the highest load per replica
        i = max(range(num_experts), key=lambda j: (shares[j] / copies[j], -j))
        copies[i] += 1
    slots = [shares[i] / copies[i] for i in range(num_experts) for _ in range(copies[i])]
    slots.sort(reverse=True)
    per_rank = (num_experts + redundant) // ep
    load, used = [0.0] * ep, [0] * ep
    for s in slots:  # heaviest replica to the least-loaded rank with room
        r = min((r for r in range(ep) if used[r] < per_rank), key=lambda r: (load[r], r))
        load[r] += s
        used[r] += 1
    return max(1.0, max(load) * ep)


__all__ = [
    "AFStep",
    "af_step_cost",
    "af_activation_bytes",
    "af_link",
    "af_transfer_s",
    "expected_destinations",
    "split_aggregates",
    "MOE_LOAD_DISTRIBUTIONS",
    "af_step_time",
    "expert_popularity",
    "micro_batch_rows",
    "moe_imbalance",
    "schedule_makespan",
]
