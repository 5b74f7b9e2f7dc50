"""Device memory: parameters, weight bytes per device, KV bytes per token, activation reserve, KV capacity.

Weights and the activation reserve are sums over the operator list of ops.py (each operator
carries its weights per device, their format, where it runs and the activations it keeps live),
so an operator added there is counted here without another edit.

Parallelism rules (vLLM): TP shards attention heads, MLP widths, the vocabulary and shared experts;
KV heads are replicated when tp > kv_heads; the MLA latent is replicated on every TP rank; EP
spreads the routed experts over ``ep`` devices of the tp x dp_attn devices of a stage (the rest
shard each expert); PP splits the layers. Formulas and assumptions: docs/cost-model.md.
"""

from __future__ import annotations

import math

from servesim.cost.ops import (
    DENSE,
    FIRST,
    LAST,
    LAYER,
    MOE,
    SAMPLED,
    Op,
    kv_elems_per_token_layer_device,
    layer_counts,
    model_ops,
    redundant_expert_bytes,
    role_parts,
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
    "op_weight_bytes",
    "param_counts",
    "validate_parallelism",
    "weight_bytes",
    "weight_bytes_per_device",
]

# Rows of logits the sampler holds at once during vLLM's memory profiling: its default max_num_seqs.
_DEFAULT_MAX_NUM_SEQS = 256


def _stage_layers(model: ModelSpec, pp: int) -> dict[str, int]:
    """Layers of each scope on the largest stage: ceil(layers / pp), its MoE layers counted first
    (an upper bound)."""
    dense, moe = layer_counts(model)
    n = math.ceil(model.num_layers / pp)
    m = min(moe, n)
    return {LAYER: n, DENSE: n - m, MOE: m}


def op_weight_bytes(
    model: ModelSpec, dtypes: DTypes, parallel: Parallelism, role: str = "colocated"
) -> list[tuple[Op, float]]:
    """(operator, its weight bytes on the most loaded device) for every operator of the role
    holding weights: its weights per layer times its layers on the largest stage (ceil(layers /
    pp), its MoE layers counted first: an upper bound); the embedding and LM head once."""
    parts = role_parts(role)
    layers = _stage_layers(model, parallel.pp)
    layers[FIRST] = layers[LAST] = 1
    return [
        (op, layers[op.scope] * (op.params * op.param_bytes))
        for op in model_ops(model, dtypes, parallel).ops
        if op.params and op.part in parts
    ]


def weight_bytes_per_device(
    model: ModelSpec, dtypes: DTypes, parallel: Parallelism, role: str = "colocated"
) -> float:
    """Weight bytes on the most loaded device (largest stage), summed over the operator list
    (``op_weight_bytes``). Roles attention/ffn hold only their part. One stage holds the
    embedding, the last one the LM head; with pp = 1 the same device holds both (pp > 1: the
    larger of the two, an upper bound)."""
    body = first = last = 0.0
    for op, w in op_weight_bytes(model, dtypes, parallel, role):
        if op.scope == FIRST:
            first += w
        elif op.scope == LAST:
            last += w
        else:
            body += w
    return body + (first + last if parallel.pp == 1 else max(first, last))


def weight_bytes(model: ModelSpec, dtypes: DTypes) -> float:
    """Weight bytes of the whole model (one copy)."""
    return weight_bytes_per_device(model, dtypes, Parallelism())


def param_counts(model: ModelSpec) -> tuple[float, float]:
    """(total, active per token) parameters from the operator list, embedding and LM head included
    (biases ignored); active: a token's top-k of the routed experts."""
    dense, moe = layer_counts(model)
    layers = {LAYER: model.num_layers, DENSE: dense, MOE: moe, FIRST: 1, LAST: 1}
    total = active = model.hidden_size  # the final norm, which the weight bytes leave out
    for op in model_ops(model, DTypes(), Parallelism()).ops:
        if op.params:
            n = layers[op.scope] * op.params
            total += n
            active += (
                layers[op.scope] * (op.params // op.num_experts * op.topk) if op.num_experts else n
            )
    return float(total), float(active)


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
    (they live in the 1 - gpu_memory_utilization margin). Summed from the operators' live bytes:
    every layer's, plus the wider of a dense and a MoE layer's FFN, plus the LM head's logits."""
    tokens = math.ceil(max_num_batched_tokens / parallel.dp_attn)
    per_token = logits = 0.0
    ffn = {DENSE: 0.0, MOE: 0.0}  # a layer is dense or MoE: the wider of the two is live
    for op in model_ops(model, dtypes, parallel).ops:
        if not op.act_bytes:
            continue
        if op.m_src == SAMPLED:
            logits += min(max_num_seqs, tokens) * op.act_bytes
        elif op.scope in ffn:
            ffn[op.scope] += op.act_bytes
        else:
            per_token += op.act_bytes
    return tokens * (per_token + max(ffn.values())) + logits


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
