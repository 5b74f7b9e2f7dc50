"""Time of one training step: forward and backward of every operator of the serving operator list
(servesim.cost.ops.model_ops), timed with the same roofline functions and hardware efficiencies,
then the pipeline schedule, the collectives and the optimizer.

Backward costs are analytic (no backward kernel data is at hand), checked end to end
(experiments/training_validation): a GEMM [M x k] @ [k x n] has two backward GEMMs of the same
FLOPs, the input gradient [M x n] @ [n x k] and the weight gradient [k x M] @ [M x n], each timed
by the GEMM model at its own shape; attention backward runs 2.5x the forward FLOPs
(FlashAttention-2: five matmuls against two); element-wise ops read and write twice as much.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from typing import NamedTuple

from servesim.cost import comm
from servesim.cost.ops import ATTN, DECODE, model_ops
from servesim.cost.roofline import (
    elementwise_time,
    gemm_time,
    grouped_gemm_time,
    params,
)
from servesim.specs.config import Parallelism
from servesim.specs.dtypes import DTypes
from servesim.specs.hardware import HardwareSpec
from servesim.specs.model import ModelSpec
from servesim.training import collectives as coll
from servesim.training.layout import TrainLayout
from servesim.training.memory import GRAD_BYTES, WEIGHT_BYTES, stage_layers, stage_params

ATTN_BWD_FLOPS = 2.5  # FlashAttention-2 backward: 5 matmuls per 2 of the forward
# estimate: routed tokens per expert vary; the busiest EP rank gets ~10% more than the mean under
# auxiliary-loss balancing (DeepSeek-V3 report, section 2.1.2: balanced within a few percent to
# ~10% per batch), and the step waits for it.
MOE_IMBALANCE = 1.10
# DP overlap (Framework.dp_overlap, estimate 0.8): the fraction of a data-parallel window (the
# backward of the last micro-batch for gradients, the forward of the first for parameter gathers,
# and the pipeline bubbles) that bucketed collectives can use: they run on their own stream but
# share HBM and SMs with the GEMMs.
BUCKET_BYTES = 40e6  # Megatron-Core's default DDP bucket (40M elements); the last one is exposed
OPTIMIZER_BYTES_PER_PARAM = (
    30.0  # Adam step: read fp32 master, m, v, grad; write master, m, v, bf16 weight
)
# estimate: host work per step (data loader handoff, logging, scheduler, launch gaps)
STEP_OVERHEAD_S = 0.02
MICROBATCH_OVERHEAD_S = 0.5e-3  # estimate: per micro-batch launch gaps the GEMM model does not see

# precision -> (GEMM formats, GEMM rate factor): FP8 with block scaling (DeepSeek-V3's 1x128 /
# 128x128 tiles) runs its scaled GEMMs ~10% below per-tensor FP8 (estimate: DeepGEMM vs cuBLAS FP8).
_PRECISION = {
    "bf16": (DTypes("bf16", "bf16", "bf16"), 1.0),
    "fp16": (DTypes("fp16", "fp16", "fp16"), 1.0),
    "fp8": (DTypes("fp8", "fp8", "bf16"), 1.0),
    "fp8-block": (DTypes("fp8", "fp8", "bf16"), 0.9),
    "nvfp4": (DTypes("fp4", "fp4", "bf16"), 1.0),
}


class Part(NamedTuple):
    phase: str  # forward | backward | recompute | optimizer | comm | pipeline | overhead
    op: str
    seconds: float  # per step, on the busiest stage
    exposed_s: float  # of which on the critical path
    bound: str


def precision(layout: TrainLayout) -> tuple[DTypes, float]:
    return _PRECISION[layout.dtype]


def _gemm3(hw, m: float, n: int, k: int, dt: DTypes, rate: float) -> tuple[float, float, str]:
    """(forward, backward) seconds of one GEMM and its bound."""
    m = max(1, int(m))
    f = gemm_time(hw, m, n, k, dt)
    b = gemm_time(hw, m, k, n, dt).seconds + gemm_time(hw, k, n, m, dt).seconds
    return f.seconds / rate, b / rate, f.bound


def _grouped3(hw, rows: float, experts: int, n: int, k: int, dt: DTypes, rate: float):
    rows = max(1, int(rows))
    f = grouped_gemm_time(hw, rows, experts, n, k, dt)
    b = grouped_gemm_time(hw, rows, experts, k, n, dt).seconds
    per = max(1, rows // max(experts, 1))  # weight gradient: one [k x per] @ [per x n] per expert
    b += experts * gemm_time(hw, k, n, per, dt).seconds
    return f.seconds / rate, b / rate, f.bound


def layer_compute(model: ModelSpec, hw: HardwareSpec, layout: TrainLayout) -> list[tuple]:
    """(op, forward s, backward s, bound, elementwise?) per micro-batch for the whole model (all
    layers, one TP/EP shard), from the serving operator list. Memoised on what it depends on."""
    key = dataclasses.replace(layout, devices=1, pp=1, dp=1, vp=1, global_batch=1, micro_batch=layout.micro_batch,
                              recompute="none", zero="1", schedule="1f1b")  # fmt: skip
    return list(_layer_compute(model, hw, key))


@lru_cache(maxsize=512)
def _layer_compute(model: ModelSpec, hw: HardwareSpec, layout: TrainLayout) -> tuple:
    dt, rate = precision(layout)
    par = Parallelism(tp=layout.tp, pp=1, ep=1, dp_attn=1)
    ops = model_ops(model, dt, par).ops
    T = layout.micro_batch * layout.seq_len / layout.cp
    s_local = layout.seq_len / layout.cp
    rows = []
    for op in ops:
        if op.m_src == DECODE or op.kind in ("attn_decode", "allreduce", "alltoall", "p2p"):
            continue
        c = op.count
        if op.kind == "gemm" and op.name == "lm_head":
            f, b, bound = _gemm3(hw, T, op.dims[0][0], op.dims[0][1], dt, rate)
            rows.append((op.name, f * c, b * c, bound, False))
        elif op.kind == "gemm":
            f = b = 0.0
            for n, k in op.dims:
                fi, bi, bound = _gemm3(hw, T, n, k, op.dtypes or dt, rate)
                f, b = f + fi, b + bi
            rows.append((op.name, f * c, b * c, bound, False))
        elif op.kind == "experts" and op.dims:
            E = model.num_experts // layout.ep
            routed = T * model.experts_per_token * MOE_IMBALANCE
            f = b = 0.0
            for n, k in op.dims:
                fi, bi, bound = _grouped3(hw, routed, E, n, k, dt, rate)
                f, b = f + fi, b + bi
            rows.append((op.name, f * c, b * c, bound, False))
        elif op.kind in ("elementwise", "experts"):
            mult = model.experts_per_token * MOE_IMBALANCE if op.kind == "experts" else 1.0
            t = elementwise_time(hw, op.bytes_per_row * T * mult)
            rows.append((op.name, t.seconds * c, 2 * t.seconds * c, "memory", True))
        elif op.kind == "attn_prefill":
            rows.append(_attention(op, hw, layout, T, s_local, c))
    return tuple(rows)


# Training attention is FlashAttention over whole sequences (FA2/FA3, cuDNN): dense tiles, no
# paging, no chunked prefill. The profile's attn_* efficiencies describe serving kernels (paged KV,
# chunked prefill, split-KV decode; on H100 they were fitted on 2024-era FA2 serving kernels) and
# would make training attention several times too slow. So training attention runs at the
# profile's GEMM efficiency (gemm_compute, the same calibrated number the GEMMs use) times a kernel
# factor: FlashAttention-3 (Shah et al. 2024, arXiv 2407.08608, Fig. 5-6) reaches ~600-660 TFLOP/s
# forward and ~450-550 backward for causal head-dim 128 at 8k+ tokens on H100, against ~750 for a
# large cuBLAS BF16 GEMM: factors 0.85 and 0.70 (FlashAttention-2 on A100, arXiv 2307.08691, Fig. 4-5:
# ~70% and ~60% of peak against ~80% for GEMMs, the same ratios within a few percent).
# PyTorch's SDPA flash backend runs FlashAttention-2 kernels, which on Hopper reach ~330-370
# TFLOP/s forward and ~290-320 backward (FA3 paper, Fig. 5-6, FA2 curves): 0.47 and 0.41 of a GEMM.
ATTN_FACTORS = {"best": (0.85, 0.70), "sdpa": (0.47, 0.41)}


class Framework(NamedTuple):
    attention: str  # best | sdpa | unfused (scores materialised: QK^T and PV GEMMs + softmax)
    tp_overlap: float  # fraction of TP collective time hidden under GEMMs
    dp_overlap: float  # fraction of the data-parallel window bucketed collectives can use
    selective: str  # what selective recomputation re-runs: "elementwise" | "half-gemms"
    cp_overlap: bool  # ring exchange under attention (True) or exposed all-gathers


# Megatron-Core: cuDNN/FA3 attention through Transformer Engine, --tp-comm-overlap hides roughly
# half of the TP collectives (estimate), --overlap-grad-reduce/--overlap-param-gather, selective
# recomputation of core attention (inside FlashAttention's backward anyway) and element-wise ops,
# CP as a P2P ring overlapped with attention. megatron-legacy: Megatron-LM before FlashAttention
# (2021, arXiv 2104.04473): attention as batched GEMMs with the s x s scores materialised, no TP
# or DP overlap. torchtitan (docs/performance.md, Dec 2024): SDPA attention (FA2 kernels), async
# TP off unless asked, FSDP2 prefetch, "selective op" checkpointing recomputes every second matmul,
# CP by all-gathering K/V (PyTorch's default rotate method then), not overlapped.
FRAMEWORKS = {
    "megatron": Framework("best", 0.5, 0.8, "elementwise", True),
    "megatron-legacy": Framework("unfused", 0.0, 0.0, "elementwise", True),
    "torchtitan": Framework("sdpa", 0.0, 0.8, "half-gemms", False),
}
# DeepEP-style all-to-all kernels run on SMs: DeepSeek-V3 reserves 20 of the H800's 132 SMs for
# communication under DualPipe (technical report, section 3.2.2), which computation then lacks.
DUALPIPE_COMM_SMS = 20


def _attention(op, hw, layout: TrainLayout, T: float, s_local: float, count: int) -> tuple:
    """Forward/backward of the attention kernel: each CP rank computes 1/cp of the causal pairs
    (load-balanced ring attention)."""
    s, b = layout.seq_len, layout.micro_batch
    keys = s / 2.0 if not op.window else min(op.window, s) * (1 - min(op.window, s) / (2.0 * s))
    pairs = b * s * keys / layout.cp
    flops = 2.0 * op.q_heads * (op.qk_dim + op.v_dim) * pairs
    e = params(hw)
    rate = hw.peak_flops("bf16") * e["gemm_compute"]
    launch = e["attn_prefill_launch_s"]
    kernel = FRAMEWORKS[layout.framework].attention
    if kernel == "unfused":
        return _unfused_attention(op, hw, layout, flops, count)
    if not hw.peak_flops("fp8"):  # before Hopper the best kernel is FlashAttention-2 itself
        kernel = "best"
    ff, fb = ATTN_FACTORS[kernel]
    f = flops / (rate * ff) + launch
    bwd = ATTN_BWD_FLOPS * flops / (rate * fb) + 2 * launch
    return (op.name, f * count, bwd * count, "compute", False)


# Unfused attention: fused scale-mask-softmax reads the fp16 scores and writes probabilities (4 B
# per score), dropout reads them and writes its output and a 1-byte mask (5 B); the backward moves
# about twice that. The two batched GEMMs run at the GEMM rate, over the whole s x s square (the
# causal mask does not skip work).
UNFUSED_BYTES_PER_SCORE = 9.0


def _unfused_attention(op, hw, layout: TrainLayout, flops: float, count: int) -> tuple:
    s, b = layout.seq_len, layout.micro_batch
    scores = b * op.q_heads * s * s / layout.cp
    gemm = params(hw)["gemm_compute"] * hw.peak_flops("bf16")
    f_gemm = 2 * flops / gemm  # whole square: twice the causal pairs
    f_mem = elementwise_time(hw, scores * UNFUSED_BYTES_PER_SCORE).seconds
    return (op.name, (f_gemm + f_mem) * count, (2 * f_gemm + 2 * f_mem) * count, "memory", False)


class Comm(NamedTuple):
    tp: float  # per micro-batch, whole model (all layers), forward + backward
    ep: float
    cp: float  # exposed part of the ring exchange
    pp: float  # per micro-batch per stage boundary, forward + backward


def micro_comm(model: ModelSpec, hw: HardwareSpec, layout: TrainLayout, attn_fwd_s: float) -> Comm:
    """Collectives of one micro-batch on the critical path (all layers; the stage share is taken
    later). TP with sequence parallelism: per layer an all-gather and a reduce-scatter around
    attention and around the MLP, in each direction, the volume of two all-reduces per pass; full
    recomputation repeats the forward ones. EP: dispatch and combine all-to-all per MoE layer, in
    each direction. CP: ring attention passes each rank's K/V chunk around the ring (cp-1 hops;
    backward passes K/V and their gradients), hidden behind the attention compute where it fits."""
    L, h = model.num_layers, model.hidden_size
    T = layout.micro_batch * layout.seq_len / layout.cp
    act = 2.0
    passes = 3 if layout.recompute == "full" else 2
    tp = 0.0
    if layout.tp > 1:
        g = coll.members_per_domain(hw, layout.tp, 1)
        per_layer = 1 if model.parallel_block else 2  # parallel blocks: one reduction per layer
        tp = (
            per_layer
            * L
            * passes
            * coll.allreduce(hw, T * h * act, layout.tp, g)
            * (1.0 - FRAMEWORKS[layout.framework].tp_overlap)
        )
    ep = 0.0
    if layout.ep > 1:
        moe = model.moe_layers or L
        g = coll.members_per_domain(hw, layout.ep, layout.tp)
        k = model.experts_per_token
        # FP8 recipes dispatch FP8 activations (DeepSeek-V3 section 3.3.2); the combine is BF16
        disp = 1.0 if layout.dtype in ("fp8", "fp8-block", "nvfp4") else act
        rows = T * MOE_IMBALANCE
        one_way = coll.moe_alltoall(hw, rows, h * disp, k, layout.ep, g)
        one_way += coll.moe_alltoall(hw, rows, h * act, k, layout.ep, g)
        ep = moe * passes * one_way  # forward, backward, and the recomputed forward
    cp = 0.0
    if layout.cp > 1:
        kv = (model.kv_lora_rank + model.qk_rope_head_dim if model.attention == "mla"
              else 2 * max(1, model.num_kv_heads // layout.tp) * model.head_dim)  # fmt: skip
        chunk = T * kv * act
        hop = comm.p2p_time(hw, chunk, scaleout=layout.tp * layout.cp > hw.scaleup_devices)
        fwd = (layout.cp - 1) * hop
        per_layer_attn = attn_fwd_s / L
        if FRAMEWORKS[layout.framework].cp_overlap:
            cp = L * (
                max(0.0, fwd - per_layer_attn) + max(0.0, 2 * fwd - ATTN_BWD_FLOPS * per_layer_attn)
            )
        else:  # all-gather K/V forward; all-gather again and reduce-scatter dK/dV backward
            g = coll.members_per_domain(hw, layout.cp, layout.tp)
            ag = coll.all_gather(hw, chunk * layout.cp, layout.cp, g)
            cp = L * passes * 1.5 * ag
    pp = 0.0
    if layout.pp > 1:
        msg = T * h * act / (layout.tp if layout.sequence_parallel else 1)
        out = layout.tp * layout.cp * layout.dp >= hw.scaleup_devices
        pp = 2 * comm.p2p_time(hw, msg, scaleout=out)
    return Comm(tp, ep, cp, pp)


def dp_comm(model: ModelSpec, hw: HardwareSpec, layout: TrainLayout) -> tuple[float, float, str]:
    """(seconds per step of gradient/parameter collectives, per-micro-batch seconds for ZeRO-3,
    label). Dense gradients reduce over dp x cp; expert gradients over dp x cp / ep."""
    sp = stage_params(model, layout)
    n = layout.dp * layout.cp
    n_exp = max(1, n // layout.ep)
    if n <= 1 and n_exp <= 1:
        return 0.0, 0.0, "none"
    g = coll.members_per_domain(hw, n, layout.tp)
    g_e = coll.members_per_domain(hw, n_exp, layout.tp * layout.ep)
    z = layout.zero_stage

    def both(fn, bytes_dense, bytes_exp):
        return fn(hw, bytes_dense, n, g) + fn(hw, bytes_exp, n_exp, g_e)

    if z == 0:
        # Megatron-LM before Megatron-Core all-reduced the fp16 gradients themselves
        gb = 2.0 if layout.framework == "megatron-legacy" else GRAD_BYTES
        return both(coll.allreduce, sp.dense * gb, sp.expert * gb), 0.0, "all-reduce"
    rs = both(coll.reduce_scatter, sp.dense * GRAD_BYTES, sp.expert * GRAD_BYTES)
    ag = both(coll.all_gather, sp.dense * WEIGHT_BYTES, sp.expert * WEIGHT_BYTES)
    if (
        z >= 3
    ):  # FSDP: gather weights for forward and again for backward, reduce-scatter grads, per micro-batch
        return 0.0, rs + 2 * ag, "fsdp"
    return rs + ag, 0.0, "reduce-scatter+all-gather"


def optimizer_time(model: ModelSpec, hw: HardwareSpec, layout: TrainLayout) -> float:
    """Adam over this device's shard of the parameters: streaming, memory-bound."""
    sp = stage_params(model, layout)
    shard = layout.dp * layout.cp if layout.zero_stage >= 1 else 1
    n = sp.dense / shard + sp.expert / max(1, shard // layout.ep)
    return elementwise_time(hw, n * OPTIMIZER_BYTES_PER_PARAM).seconds


def bucket_exposed(hw: HardwareSpec, n: int, g: int) -> float:
    """The last bucket's reduce-scatter cannot overlap anything."""
    return coll.reduce_scatter(hw, BUCKET_BYTES * GRAD_BYTES, n, g)


def dualpipe_slowdown(hw: HardwareSpec) -> float:
    """Compute slows by the SMs the communication kernels hold."""
    units = hw.compute_units or 132
    return units / max(1, units - DUALPIPE_COMM_SMS)


def stage_fraction(model: ModelSpec, layout: TrainLayout) -> float:
    return stage_layers(model, layout) / model.num_layers


def elementwise_rate(hw: HardwareSpec) -> float:
    return hw.memory_bw * params(hw)["elementwise_memory"]


__all__ = ["ATTN", "Part"]
