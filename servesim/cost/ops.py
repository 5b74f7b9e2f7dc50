"""The model as data: one layer's operators x layer counts, built once per (model, dtypes, parallelism).

Each operator says what it multiplies or moves (GEMM shape, bytes per token, collective group) and
which batch aggregate sets its size; step.py turns them into time with roofline.py and comm.py.
All sizes are per device (one TP/EP shard). See docs/cost-model.md for every formula.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

from servesim.specs.config import Parallelism
from servesim.specs.dtypes import DTYPE_BYTES, DTypes
from servesim.specs.model import ModelSpec
from servesim.specs.rules import validate_parallelism  # re-exported: one rule set

# Which batch aggregate sets an operator's row count M.
TOKENS = "tokens"  # prefill_tokens + decode_seqs: every token computed this step
SAMPLED = "sampled"  # rows that sample a token (LM head)
PREFILL_KV = (
    "prefill_kv"  # prefill_tokens + prefill_ctx: MLA up-projection of new and cached latents
)
DECODE = "decode"  # decode_seqs: MLA weight-absorbed decode path
ATTN = "attn"  # attention kernels: several aggregates at once

ATTENTION, FFN = "attention", "ffn"  # the two parts a step splits into (attention/FFN pools)


class Op(NamedTuple):
    """One operator of one layer (or of the whole model, count 1) on one device."""

    name: str
    kind: str  # gemm | experts | elementwise | attn_prefill | attn_decode | allreduce | alltoall
    # | allgather | reducescatter | p2p
    part: str  # ATTENTION | FFN
    count: int  # runs per step on the critical path (layers over all stages)
    m_src: str  # TOKENS | SAMPLED | PREFILL_KV | DECODE | ATTN
    local: bool = True  # M is split over the dp_attn groups (True) or global (MoE experts)
    dims: tuple[tuple[int, int], ...] = ()  # gemm/experts: (n, k) of each GEMM in the op
    dtypes: DTypes | None = None  # GEMM formats (embedding/LM head stay 16-bit)
    bytes_per_row: float = 0.0  # elementwise: HBM bytes per row; collectives: message bytes per row
    group: int = 1  # devices in the collective
    # attention kernels (per device)
    q_heads: int = 0
    kv_heads: int = 0
    head_dim: int = 0  # the head size passed to the kernel model
    qk_dim: int = 0  # FLOPs per (query, key) pair = 2 * q_heads * (qk_dim + v_dim)
    v_dim: int = 0
    kv_tok_bytes: float = 0.0  # bytes read per context token (K and V, or the MLA latent)
    qo_tok_bytes: float = 0.0  # bytes per new token: Q read and O written
    window: int = 0  # sliding window (0 = full attention)
    attn_dtype: str = "bf16"
    # MoE experts
    num_experts: int = 0
    topk: int = 0
    ep: int = 1


class ModelOps(NamedTuple):
    ops: tuple[Op, ...]
    tp: int
    pp: int
    ep: int
    dp_attn: int
    stage_devices: int  # devices that run one layer (tp x dp_attn)
    devices: int  # devices of one instance (stage_devices x pp)
    compute_dtype: str  # for MFU


def _b(dtype: str) -> float:
    return DTYPE_BYTES[dtype]


def layer_counts(model: ModelSpec) -> tuple[int, int]:
    """(dense MLP layers, MoE layers)."""
    if not model.is_moe:
        return model.num_layers, 0
    moe = model.moe_layers or (model.num_layers - model.dense_layers)
    return model.num_layers - moe, moe


def kv_heads_per_device(model: ModelSpec, tp: int) -> int:
    """KV heads one TP rank holds; replicated (one per rank) when tp > kv_heads."""
    return max(1, model.num_kv_heads // tp)


def kv_elems_per_token_layer_device(model: ModelSpec, tp: int) -> int:
    """KV-cache elements one device stores per token per layer (MLA latent is replicated on every rank)."""
    if model.attention == "mla":
        return model.kv_lora_rank + model.qk_rope_head_dim
    return 2 * kv_heads_per_device(model, tp) * model.head_dim


def shared_expert_width(model: ModelSpec) -> int:
    """Total intermediate width of the shared experts (0 if none)."""
    if model.shared_expert_intermediate_size:
        return model.shared_expert_intermediate_size * max(1, model.num_shared_experts)
    return model.num_shared_experts * model.moe_intermediate_size


def expected_distinct_experts(num_experts: int, topk: int, tokens: float) -> float:
    """Expected experts touched when each of ``tokens`` tokens picks ``topk`` of ``num_experts`` uniformly."""
    if tokens <= 0 or num_experts <= 0:
        return 0.0
    return num_experts * (1.0 - (1.0 - topk / num_experts) ** tokens)


def _low_precision_kept(dtypes: DTypes) -> DTypes:
    """Embedding and LM head stay 16-bit when the body is quantised (vLLM, TensorRT-LLM default)."""
    if _b(dtypes.weights) >= 2:
        return dtypes
    act = dtypes.activations if _b(dtypes.activations) >= 2 else "bf16"
    return DTypes("bf16", act, dtypes.kv_cache)


def hidden_bytes(dtypes: DTypes) -> float:
    """Bytes per element of the residual stream and the GEMM outputs: 16-bit when activations are
    quantised (fp8 activations are GEMM inputs only; norms, all-reduce, pipeline sends and the
    expert combine run on bf16 hidden states in vLLM, SGLang and TensorRT-LLM)."""
    return max(_b(dtypes.activations), 2.0)


def _attn_dtype(dtypes: DTypes) -> str:
    """Attention runs in fp8 only when both the activations and the KV cache are 1-byte formats."""
    return (
        dtypes.activations if _b(dtypes.kv_cache) == 1 and _b(dtypes.activations) == 1 else "bf16"
    )


def _local_layers(model: ModelSpec) -> list[tuple[str, int, int]]:
    """(row suffix, layers, window) of layers whose keys are limited: sliding windows, and Llama 4's
    chunked attention, approximated as a window of one chunk (an upper bound: on average a token
    sees half a chunk)."""
    out = []
    if model.sliding_window and model.sliding_layers:
        out.append(("_sliding", model.sliding_layers, model.sliding_window))
    if model.attention_chunk_size and model.chunked_layers:
        out.append(("_chunked", model.chunked_layers, model.attention_chunk_size))
    return out


def _attention_ops(model: ModelSpec, dtypes: DTypes, tp: int, rope_fused: bool) -> list[Op]:
    """QKV/O projections and the attention kernels (GQA/MHA or MLA)."""
    L, h, act = model.num_layers, model.hidden_size, _b(dtypes.activations)
    kvb, qh = _b(dtypes.kv_cache), model.num_heads // tp
    ad = _attn_dtype(dtypes)
    local = _local_layers(model)
    full = L - sum(n for _, n, _ in local)
    ops: list[Op] = []
    if model.attention == "mla":
        nope, rope, v, r = (
            model.qk_nope_head_dim,
            model.qk_rope_head_dim,
            model.v_head_dim,
            model.kv_lora_rank,
        )
        qk = nope + rope
        if model.q_lora_rank:
            ops.append(Op("q_a_proj", "gemm", ATTENTION, L, TOKENS, dims=((model.q_lora_rank, h),)))
            ops.append(
                Op("q_b_proj", "gemm", ATTENTION, L, TOKENS, dims=((qh * qk, model.q_lora_rank),))
            )
        else:
            ops.append(Op("q_proj", "gemm", ATTENTION, L, TOKENS, dims=((qh * qk, h),)))
        ops.append(Op("kv_a_proj", "gemm", ATTENTION, L, TOKENS, dims=((r + rope, h),)))
        # prefill: up-project the latents of the new and the cached tokens (not absorbed)
        ops.append(Op("kv_b_proj", "gemm", ATTENTION, L, PREFILL_KV, dims=((qh * (nope + v), r),)))
        ops.append(
            Op("rope", "elementwise", ATTENTION, L, TOKENS, bytes_per_row=2 * (qh + 1) * rope * act)
        )
        kinds = [
            ("attn_prefill", full, 0, dict(kv_heads=qh, head_dim=qk, qk_dim=qk, v_dim=v, kv_tok_bytes=qh * (qk + v) * act, qo_tok_bytes=qh * (qk + v) * act)),
            # decode absorbs W_UK / W_UV: MQA over the compressed latent (kv_lora_rank + rope per token)
            ("attn_decode", full, 0, dict(kv_heads=1, head_dim=r + rope, qk_dim=r + rope, v_dim=r, kv_tok_bytes=(r + rope) * kvb, qo_tok_bytes=qh * (2 * r + rope) * act)),
        ]  # fmt: skip
        for name, count, window, kw in kinds:
            ops.append(
                Op(
                    name,
                    name,
                    ATTENTION,
                    count,
                    ATTN,
                    q_heads=qh,
                    window=window,
                    attn_dtype=ad,
                    **kw,
                )
            )
        ops.append(Op("mla_q_absorb", "gemm", ATTENTION, L, DECODE, dims=((qh * r, nope),)))
        ops.append(Op("mla_v_absorb", "gemm", ATTENTION, L, DECODE, dims=((qh * v, r),)))
        ops.append(Op("o_proj", "gemm", ATTENTION, L, TOKENS, dims=((h, qh * v),)))
        return ops
    hd, kvh = model.head_dim, kv_heads_per_device(model, tp)
    ops.append(Op("qkv_proj", "gemm", ATTENTION, L, TOKENS, dims=(((qh + 2 * kvh) * hd, h),)))
    if model.position == "rope" and not rope_fused:
        # ALiBi and learned positions have no rotary kernel; an engine that rotates Q/K inside
        # the attention kernel skips this pass
        rope_row = 2 * (qh + kvh) * hd * act * model.rotary_fraction  # partial rotary
        ops.append(Op("rope", "elementwise", ATTENTION, L, TOKENS, bytes_per_row=rope_row))
    common = dict(q_heads=qh, kv_heads=kvh, head_dim=hd, qk_dim=hd, v_dim=hd, attn_dtype=ad)
    kv_tok, qo_tok = 2 * kvh * hd * kvb, 2 * qh * hd * act
    for suffix, count, window in (("", full, 0), *local):
        if count:
            for phase in ("attn_prefill", "attn_decode"):
                ops.append(
                    Op(phase + suffix, phase, ATTENTION, count, ATTN, window=window,
                       kv_tok_bytes=kv_tok, qo_tok_bytes=qo_tok, **common)
                )  # fmt: skip
    ops.append(Op("o_proj", "gemm", ATTENTION, L, TOKENS, dims=((h, qh * hd),)))
    return ops


def _ffn_ops(
    model: ModelSpec, dtypes: DTypes, parallel: Parallelism, moe_comm: str = "alltoall"
) -> list[Op]:
    """Dense MLP layers and MoE layers (router, experts, shared experts, EP all-to-all)."""
    tp, ep, dp = parallel.tp, parallel.ep, parallel.dp_attn
    h, act, hid = model.hidden_size, _b(dtypes.activations), hidden_bytes(dtypes)
    dense, moe = layer_counts(model)
    up = 2 if model.gated_mlp else 1
    ops: list[Op] = []
    if dense and model.intermediate_size:
        i = model.intermediate_size // tp
        ops.append(Op("mlp_gate_up", "gemm", FFN, dense, TOKENS, dims=((up * i, h),)))
        ops.append(
            # reads the 16-bit gate/up output, writes the next GEMM's input
            Op("mlp_act", "elementwise", FFN, dense, TOKENS, bytes_per_row=up * i * hid + i * act)
        )
        ops.append(Op("mlp_down", "gemm", FFN, dense, TOKENS, dims=((h, i),)))
        if tp > 1:
            ops.append(
                Op("tp_allreduce", "allreduce", FFN, dense, TOKENS, bytes_per_row=h * hid, group=tp)
            )
    if not moe:
        return ops
    E, k = model.num_experts, model.experts_per_token
    etp = tp * dp // ep  # devices sharing one expert's weights (TP inside the expert)
    im = model.moe_intermediate_size // etp
    router_dt = _low_precision_kept(dtypes)
    ops.append(Op("moe_router", "gemm", FFN, moe, TOKENS, dims=((E, h),), dtypes=router_dt))
    # Token exchange around the experts with attention data-parallel (dp > 1), two ways:
    # - all-gather / reduce-scatter ("allgather" moe_comm: vLLM's default all2all backend,
    #   SGLang's DP-attention gather, TensorRT-LLM's CUTLASS MoE without MNNVL): every device
    #   receives every dp group's tokens (dispatched in the activation format), runs its experts
    #   on those routed to it, and the outputs are reduce-scattered (16-bit) back; this replaces
    #   the MoE layer's TP all-reduce;
    # - all-to-all ("alltoall": DeepEP, MNNVL), below, with ep > 1 only.
    # Without dp the tokens are already on every TP rank: the TP all-reduce sums the outputs.
    gather = dp > 1 and (etp > 1 and ep == 1 or ep > 1 and moe_comm == "allgather")
    if gather:
        ops.append(Op("dp_allgather", "allgather", FFN, moe, TOKENS, local=False,
                      bytes_per_row=h * (hid if ep == 1 else act), group=tp * dp))  # fmt: skip
    if ep > 1 and not gather and (dp > 1 or moe_comm == "alltoall"):
        # bytes_per_row: one copy of a token's hidden state per device of the group (the
        # fan-out to its topk experts and the per-node de-duplication are comm.ep_alltoall's)
        ops.append(Op("ep_dispatch", "alltoall", FFN, moe, TOKENS, local=False,
                      bytes_per_row=h * act / ep, group=ep, topk=k))  # fmt: skip
    # top-k selection over the router logits: read E fp32 logits, write k ids and weights
    ops.append(Op("moe_topk", "elementwise", FFN, moe, TOKENS, bytes_per_row=E * 4 + k * 8))
    xp = dict(local=False, num_experts=E, topk=k, ep=ep)
    # permute: each routed copy of a token is gathered into its expert's rows (read + write);
    # un-permute: each expert output row is read and the k rows of a token summed, weighted
    # (vLLM moe_align/permute + moe_sum, SGLang/TRT-LLM expand/finalize kernels)
    ops.append(Op("moe_permute", "experts", FFN, moe, TOKENS, bytes_per_row=2 * h * act, **xp))
    ops.append(Op("moe_experts_gate_up", "experts", FFN, moe, TOKENS, dims=((up * im, h),), **xp))
    moe_act_row = up * im * hid + im * act
    ops.append(Op("moe_act", "experts", FFN, moe, TOKENS, bytes_per_row=moe_act_row, **xp))
    ops.append(Op("moe_experts_down", "experts", FFN, moe, TOKENS, dims=((h, im),), **xp))
    a2a = ep > 1 and not gather and (dp > 1 or moe_comm == "alltoall")
    ops += _unpermute_ops(h * hid, k, moe, ep > 1 and not a2a, xp)
    if a2a:
        # expert outputs come back 16-bit (DeepEP: fp8 dispatch, bf16 combine)
        ops.append(Op("ep_combine", "alltoall", FFN, moe, TOKENS, local=False,
                      bytes_per_row=h * hid / ep, group=ep, topk=k))  # fmt: skip
    sw = shared_expert_width(model) // tp
    if sw:
        ops.append(Op("shared_experts", "gemm", FFN, moe, TOKENS, dims=((up * sw, h), (h, sw))))
    if gather:
        ops.append(Op("dp_reducescatter", "reducescatter", FFN, moe, TOKENS, local=False,
                      bytes_per_row=h * hid, group=tp * dp))  # fmt: skip
    elif tp > 1:
        ops.append(
            Op("tp_allreduce", "allreduce", FFN, moe, TOKENS, bytes_per_row=h * hid, group=tp)
        )
    return ops


def _unpermute_ops(row_bytes: float, k: int, layers: int, all_tokens: bool, xp: dict) -> list[Op]:
    """Un-permute: each expert output row read and the k rows of a token summed, weighted. A rank
    that holds every token of the layer (``all_tokens``: EP without an all-to-all, i.e. after
    the DP all-gather, or TP attention with EP experts) writes an output row for every token,
    zeros where none of its experts was chosen, for the reduce-scatter / all-reduce that
    follows (TensorRT-LLM finalize, vLLM moe_sum); otherwise each routed token is written once.
    aiconfigurator's EP rows (every token on the rank) show that write: without it the model's
    time falls behind the measured one as ep / topk grows (experiments/e2e_validation)."""
    if not all_tokens:  # read every expert row, write each token once
        return [Op("moe_unpermute", "experts", FFN, layers, TOKENS,
                   bytes_per_row=row_bytes * (1.0 + 1.0 / k), **xp)]  # fmt: skip
    return [
        Op("moe_unpermute", "experts", FFN, layers, TOKENS, bytes_per_row=row_bytes, **xp),
        Op(
            "moe_finalize", "elementwise", FFN, layers, TOKENS, local=False, bytes_per_row=row_bytes
        ),
    ]


def _merge(ops: list[Op]) -> tuple[Op, ...]:
    """Operators of the same name, part and shape run as one row with the counts added."""
    out: dict[tuple, Op] = {}
    for op in ops:
        key = op._replace(count=0)
        out[key] = out[key]._replace(count=out[key].count + op.count) if key in out else op
    return tuple(out.values())


@lru_cache(maxsize=256)
def model_ops(
    model: ModelSpec,
    dtypes: DTypes,
    parallel: Parallelism,
    rope_fused: bool = False,
    moe_comm: str = "alltoall",
    redundant_experts: int = 0,
) -> ModelOps:
    """Every operator of one step, in execution order, for this model, formats and parallelism
    (``rope_fused``: the engine applies rotary embeddings inside its attention kernel;
    ``moe_comm``: how an EP group exchanges tokens, ``alltoall`` or ``allgather``;
    ``redundant_experts``: EPLB replicas, which let ep divide the experts + replicas)."""
    validate_parallelism(model, parallel, model.name, redundant=redundant_experts)
    tp, pp, dp = parallel.tp, parallel.pp, parallel.dp_attn
    L, h, hid = model.num_layers, model.hidden_size, hidden_bytes(dtypes)
    edge = _low_precision_kept(dtypes)
    ops = [
        Op(
            "embedding",
            "elementwise",
            ATTENTION,
            1,
            TOKENS,
            bytes_per_row=h * (_b(edge.weights) + hid),
        )
    ]
    # fused residual add + RMSNorm: read x and residual, write both
    ops.append(Op("input_norm", "elementwise", ATTENTION, L, TOKENS, bytes_per_row=4 * h * hid))
    ops += _attention_ops(model, dtypes, tp, rope_fused)
    if tp > 1 and not model.parallel_block:  # parallel blocks reduce attention + MLP at once
        ops.append(
            Op("tp_allreduce", "allreduce", ATTENTION, L, TOKENS, bytes_per_row=h * hid, group=tp)
        )
    if model.norms_per_layer > 1:  # single-norm parallel blocks (GPT-J, Falcon-7B, Phi) have one
        ops.append(
            Op("post_attn_norm", "elementwise", ATTENTION, L, TOKENS, bytes_per_row=4 * h * hid)
        )
    ops += _ffn_ops(model, dtypes, parallel, moe_comm)
    if pp > 1:
        # vLLM sends hidden states and the residual between stages
        ops.append(Op("pp_send", "p2p", ATTENTION, pp - 1, TOKENS, bytes_per_row=2 * h * hid))
    ops.append(Op("final_norm", "elementwise", ATTENTION, 1, TOKENS, bytes_per_row=2 * h * hid))
    ops.append(
        Op(
            "lm_head",
            "gemm",
            ATTENTION,
            1,
            SAMPLED,
            dims=((model.vocab_size // tp, h),),
            dtypes=edge,
        )
    )
    stage = tp * dp
    return ModelOps(_merge(ops), tp, pp, parallel.ep, dp, stage, stage * pp, dtypes.compute)


def gemm_flops_bytes(m: float, n: int, k: int, dtypes: DTypes) -> tuple[float, float]:
    """FLOPs 2*m*k*n; bytes: weights once, activations in and out per row (as roofline.gemm_time)."""
    return 2.0 * m * n * k, k * n * _b(dtypes.weights) + m * (k + n) * _b(dtypes.activations)


def local_rows(m: int, dp: int) -> int:
    """Rows one dp_attn group handles: an even split, rounded up."""
    return m if dp == 1 else math.ceil(m / dp)


def redundant_expert_bytes(
    model: ModelSpec, dtypes: DTypes, parallel: Parallelism, redundant: int, role: str
) -> float:
    """Weight bytes of the EPLB replicas one device holds on top of its share of the experts:
    ``redundant`` extra expert slots spread over the ``ep`` ranks (DeepSeek EPLB / SGLang
    ``--ep-num-redundant-experts``: (E + R) / ep slots per rank, ceil), each a whole routed expert
    (TP-sharded inside like the others), in every MoE layer of the largest pipeline stage."""
    if redundant <= 0 or not model.is_moe or role == "attention" or parallel.ep <= 1:
        return 0.0
    ep, etp = parallel.ep, max(1, parallel.tp * parallel.dp_attn // parallel.ep)
    per_rank = math.ceil((model.num_experts + redundant) / ep) - model.num_experts // ep
    up = 3 if model.gated_mlp else 2
    expert = up * model.hidden_size * model.moe_intermediate_size / etp * _b(dtypes.weights)
    layers = min(layer_counts(model)[1], math.ceil(model.num_layers / parallel.pp))
    return per_rank * expert * layers
