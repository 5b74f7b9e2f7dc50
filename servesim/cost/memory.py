"""Device memory: parameters, weight bytes per device, KV bytes per token, activation reserve, KV capacity.

Parallelism rules (vLLM): TP shards attention heads, MLP widths, the vocabulary and shared experts;
KV heads are replicated when tp > kv_heads; the MLA latent is replicated on every TP rank; EP
spreads the routed experts over ``ep`` devices of the tp x dp_attn devices of a stage (the rest
shard each expert); PP splits the layers. Formulas and assumptions: docs/cost-model.md.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from servesim.cost.ops import (
    hidden_bytes,
    kv_elems_per_token_layer_device,
    kv_heads_per_device,
    layer_counts,
    redundant_expert_bytes,
    shared_expert_width,
    validate_parallelism,
)
from servesim.specs.common import SpecError
from servesim.specs.config import DEFAULT_MAX_NUM_BATCHED_TOKENS, Parallelism
from servesim.specs.dtypes import DTYPE_BYTES, DTypes
from servesim.specs.model import ModelSpec

__all__ = [
    "activation_reserve_bytes",
    "check_fit",
    "kv_bytes_per_token",
    "kv_bytes_per_token_per_device",
    "kv_capacity_tokens",
    "param_counts",
    "validate_parallelism",
    "weight_bytes",
    "weight_bytes_per_device",
]

# Rows of logits the sampler holds at once during vLLM's memory profiling: its default max_num_seqs.
_DEFAULT_MAX_NUM_SEQS = 256


class _Layer(NamedTuple):
    """Parameters of one layer on one device, by kind (GEMM weights vs. 16-bit small tensors)."""

    attn: float  # attention projections
    mlp: float  # dense MLP (dense layers)
    experts: float  # routed experts held (MoE layers)
    shared: float  # shared experts (MoE layers)
    router: float  # kept 16-bit
    norms: float  # kept 16-bit


def _layer(
    model: ModelSpec, tp: int = 1, ep: int = 1, dp: int = 1, *, active: bool = False
) -> _Layer:
    h = model.hidden_size
    qh = model.num_heads // tp
    if model.attention == "mla":
        nope, rope, v, r = (
            model.qk_nope_head_dim,
            model.qk_rope_head_dim,
            model.v_head_dim,
            model.kv_lora_rank,
        )
        q = (
            model.q_lora_rank * (h + qh * (nope + rope))
            if model.q_lora_rank
            else h * qh * (nope + rope)
        )
        attn = q + h * (r + rope) + r * qh * (nope + v) + qh * v * h
        norms = 2 * h + (model.q_lora_rank or 0) + r
    else:
        hd = model.head_dim
        attn = h * (qh + 2 * kv_heads_per_device(model, tp)) * hd + qh * hd * h
        norms = 2 * h
    up = 3 if model.gated_mlp else 2
    mlp = up * h * model.intermediate_size // tp
    experts = shared = router = 0.0
    if model.is_moe:
        held = model.experts_per_token if active else model.num_experts // ep
        etp = max(1, tp * dp // ep)
        experts = held * up * h * model.moe_intermediate_size / etp
        shared = up * h * shared_expert_width(model) / tp
        router = h * model.num_experts
    return _Layer(attn, mlp, experts, shared, router, norms)


def param_counts(model: ModelSpec) -> tuple[float, float]:
    """(total, active per token) parameters, embedding and LM head included (biases ignored)."""
    dense, moe = layer_counts(model)
    emb = model.vocab_size * model.hidden_size * (1 if model.tie_word_embeddings else 2)
    out = []
    for active in (False, True):
        ly = _layer(model, active=active)
        common = model.num_layers * (ly.attn + ly.norms)
        out.append(
            emb
            + model.hidden_size
            + common
            + dense * ly.mlp
            + moe * (ly.experts + ly.shared + ly.router)
        )
    return float(out[0]), float(out[1])


def _edge_bytes(dtypes: DTypes) -> float:
    """Embedding and LM head stay 16-bit when the body is quantised (vLLM, TensorRT-LLM default)."""
    return max(DTYPE_BYTES[dtypes.weights], 2.0)


def _stage_split(model: ModelSpec, pp: int) -> tuple[int, int, int]:
    """(layers, dense layers, MoE layers) of the largest stage; its MoE layers counted first (upper bound)."""
    dense, moe = layer_counts(model)
    n = math.ceil(model.num_layers / pp)
    m = min(moe, n)
    return n, n - m, m


def weight_bytes_per_device(
    model: ModelSpec, dtypes: DTypes, parallel: Parallelism, role: str = "colocated"
) -> float:
    """Weight bytes on the most loaded device (largest stage). Roles attention/ffn hold only their part."""
    tp, pp, ep, dp = parallel.tp, parallel.pp, parallel.ep, parallel.dp_attn
    wb, small = DTYPE_BYTES[dtypes.weights], 2.0
    ly = _layer(model, tp, ep, dp)
    n, nd, nm = _stage_split(model, pp)
    attn_part = n * (ly.attn * wb + ly.norms * small)
    ffn_part = nd * ly.mlp * wb + nm * ((ly.experts + ly.shared) * wb + ly.router * small)
    emb = model.vocab_size // tp * model.hidden_size * _edge_bytes(dtypes)
    # one stage holds the embedding, the last the LM head; with pp = 1 the same device holds both
    edges = emb if (pp > 1 or model.tie_word_embeddings) else 2 * emb
    if role == "attention":
        return attn_part + edges
    if role == "ffn":
        return ffn_part
    return attn_part + ffn_part + edges


def weight_bytes(model: ModelSpec, dtypes: DTypes) -> float:
    """Weight bytes of the whole model (one copy)."""
    return weight_bytes_per_device(model, dtypes, Parallelism())


def kv_bytes_per_token(model: ModelSpec, kv_dtype: str | DTypes) -> float:
    """KV-cache bytes per token, whole model, all layers, unsharded (Llama-3.1-8B bf16: 131072)."""
    kv = kv_dtype.kv_cache if isinstance(kv_dtype, DTypes) else kv_dtype
    return model.num_layers * kv_elems_per_token_layer_device(model, 1) * DTYPE_BYTES[kv]


def kv_bytes_per_token_per_device(
    model: ModelSpec, kv_dtype: str | DTypes, parallel: Parallelism
) -> float:
    """KV bytes one device stores per token it holds: its stage's layers, its TP shard (KV heads
    replicated when tp > kv_heads; the MLA latent on every rank). A dp_attn group holds its own tokens."""
    kv = kv_dtype.kv_cache if isinstance(kv_dtype, DTypes) else kv_dtype
    layers = math.ceil(model.num_layers / parallel.pp)
    return layers * kv_elems_per_token_layer_device(model, parallel.tp) * DTYPE_BYTES[kv]


def activation_reserve_bytes(
    model: ModelSpec,
    dtypes: DTypes,
    parallel: Parallelism,
    max_num_batched_tokens: int = DEFAULT_MAX_NUM_BATCHED_TOKENS,
    max_num_seqs: int = _DEFAULT_MAX_NUM_SEQS,
) -> float:
    """Peak activation memory of one forward pass of ``max_num_batched_tokens`` (an estimate of what
    vLLM's profiling run measures): per token the residual stream and hidden state (4 x hidden),
    the QKV output and the widest MLP/MoE intermediate (x3: gate, up, product), plus fp32 logits
    for ``max_num_seqs`` rows. Allocator slack, CUDA graphs and the CUDA context are not counted
    (they live in the 1 - gpu_memory_utilization margin)."""
    tp, dp = parallel.tp, parallel.dp_attn
    tokens = math.ceil(max_num_batched_tokens / dp)
    # GEMM outputs and the residual stream stay 16-bit when activations are quantised
    h, act = model.hidden_size, hidden_bytes(dtypes)
    if model.attention == "mla":
        qkv = (
            model.num_heads
            // tp
            * (model.qk_nope_head_dim + model.qk_rope_head_dim + model.v_head_dim)
            * 2
        )
    else:
        qkv = (model.num_heads // tp + 2 * kv_heads_per_device(model, tp)) * model.head_dim
    width = model.intermediate_size // tp
    if model.is_moe:
        etp = max(1, tp * dp // parallel.ep)
        moe = (
            model.experts_per_token * model.moe_intermediate_size // etp
            + shared_expert_width(model) // tp
        )
        width = max(width, moe)
    per_token = (4 * h + qkv + 3 * width) * act
    logits = min(max_num_seqs, tokens) * (model.vocab_size // tp) * 4.0
    return tokens * per_token + logits


def _role_weights(ctx, role: str) -> float:
    extra = getattr(ctx, "redundant_experts", 0)  # EPLB replicas (ops.redundant_expert_bytes)
    return weight_bytes_per_device(ctx.model, ctx.dtypes, ctx.parallel, role) + (
        redundant_expert_bytes(ctx.model, ctx.dtypes, ctx.parallel, extra, role) if extra else 0.0
    )


def _free_bytes(
    ctx, gpu_memory_utilization: float, role: str, max_num_batched_tokens: int
) -> tuple[float, float]:
    """(bytes left for the KV cache on one device, bytes needed before any KV)."""
    need = _role_weights(ctx, role) + activation_reserve_bytes(
        ctx.model, ctx.dtypes, ctx.parallel, max_num_batched_tokens
    )
    return ctx.hardware.memory_bytes * gpu_memory_utilization - need, need


def kv_capacity_tokens(
    ctx,
    gpu_memory_utilization: float,
    role: str,
    max_num_batched_tokens: int = DEFAULT_MAX_NUM_BATCHED_TOKENS,
) -> int:
    """KV tokens one instance can hold (all its dp_attn groups); 0 for the ffn role or when nothing is left."""
    if role == "ffn":
        return 0
    free, _ = _free_bytes(ctx, gpu_memory_utilization, role, max_num_batched_tokens)
    per_token = kv_bytes_per_token_per_device(ctx.model, ctx.dtypes, ctx.parallel)
    if free <= 0 or per_token <= 0:
        return 0
    return int(free // per_token) * ctx.parallel.dp_attn


def check_fit(
    ctx,
    gpu_memory_utilization: float,
    role: str,
    where: str = "",
    max_num_batched_tokens: int = DEFAULT_MAX_NUM_BATCHED_TOKENS,
) -> None:
    """SpecError when the weights and activation reserve leave no room for KV on a device."""
    validate_parallelism(
        ctx.model, ctx.parallel, where, redundant=getattr(ctx, "redundant_experts", 0)
    )
    free, need = _free_bytes(ctx, gpu_memory_utilization, role, max_num_batched_tokens)
    ok = (
        free > 0
        if role == "ffn"
        else kv_capacity_tokens(ctx, gpu_memory_utilization, role, max_num_batched_tokens) > 0
    )
    if ok:
        return
    p, hw = ctx.parallel, ctx.hardware
    wt = _role_weights(ctx, role)
    raise SpecError(
        where,
        "parallelism",
        f"tp={p.tp} pp={p.pp} ep={p.ep} dp_attn={p.dp_attn}",
        f"does not fit: model {ctx.model.name} in {ctx.dtypes.weights} needs {need / 1e9:.1f} GB per device "
        f"(weights {wt / 1e9:.1f} GB + activations {(need - wt) / 1e9:.1f} GB) on {hw.name} ({role}); "
        f"has {hw.memory_GB:g} GB x {gpu_memory_utilization:g} = {hw.memory_GB * gpu_memory_utilization:.1f} GB",
    )
