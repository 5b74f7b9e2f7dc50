"""The model as data: one layer's operators x layer counts, built once per (model, dtypes, parallelism).

This list is the one description of the model the cost model has. Each operator says what it
multiplies or moves (GEMM shape, bytes per token, collective group), which batch aggregate sets its
size, the weights it holds and the activations it keeps live, and where it runs (which layers,
which pipeline stage, which part of an attention/FFN split). From it derive: the step time
(step.py with roofline.py and comm.py, one time function per kind in optime.py), the rows of
``servesim roofline`` (step.breakdown), the weight bytes per device, role and pipeline stage and
the activation reserve (memory.py), and the attention/FFN stage costs (afstep.py). All sizes are
per device (one TP/EP shard). See docs/cost-model.md for every formula and docs/internals.md for
how to add an operator.
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

# The parts a step splits into (attention/FFN pools); LINK: the activations an attention/FFN
# split ships between them, costed by afstep.py only (no role's step runs them).
ATTENTION, FFN, LINK = "attention", "ffn", "link"


def role_parts(role: str) -> tuple[str, ...]:
    """The parts of the step a pool of this role runs (colocated, prefill, decode: both)."""
    return (ATTENTION,) if role == "attention" else (FFN,) if role == "ffn" else (ATTENTION, FFN)


# Where an operator runs, which sets the pipeline stage that holds its weights.
LAYER = "layer"  # every layer (or a subset without weights: sliding-window attention)
DENSE = "dense"  # dense-MLP layers
MOE = "moe"  # MoE layers
FIRST = "first"  # once, on the first stage (embedding)
LAST = "last"  # once, on the last stage (final norm, LM head)
BETWEEN = "between"  # between stages (pipeline sends)


class Op(NamedTuple):
    """One operator of one layer (or of the whole model, count 1) on one device."""

    name: str
    kind: str  # its time function (optime.TIME_OF): gemm | experts | elementwise | allreduce
    # | alltoall | allgather | reducescatter | p2p; attn_prefill | attn_decode (step.py);
    # af_link (afstep.py)
    part: str  # ATTENTION | FFN | LINK
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
    # memory (memory.py): where it runs, its weights on one device, its live activations
    scope: str = LAYER  # LAYER | DENSE | MOE | FIRST | LAST | BETWEEN
    params: float = 0  # weight elements one device holds per layer (its TP/EP shard); experts:
    # all the experts it holds
    param_bytes: float = 0.0  # bytes per weight element
    act_bytes: float = 0.0  # activation bytes per row kept live at the forward pass's peak
    # MoE un-permute on an EP rank that holds every token of the layer (after a DP all-gather,
    # or TP attention with EP experts; not after an all-to-all): the other ranks' rows are in
    # its buffers (roofline.moe_other_rows_time)
    all_tokens: bool = False


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


def _proj(model: ModelSpec, dtypes: DTypes, name: str, n: int, k: int, m_src: str = TOKENS,
          held: int = -1, **kw) -> Op:  # fmt: skip
    """A projection of every layer: one [M x k] @ [k x n] GEMM holding its n x k weights in the
    weight format (``held`` overrides: 0 when it multiplies by another operator's weights)."""
    w = n * k if held < 0 else held
    return Op(name, "gemm", ATTENTION, model.num_layers, m_src, dims=((n, k),), params=w,
              param_bytes=_b(dtypes.weights), **kw)  # fmt: skip


def _attention_ops(model: ModelSpec, dtypes: DTypes, tp: int, rope_fused: bool) -> list[Op]:
    """QKV/O projections and the attention kernels (GQA/MHA or MLA)."""
    if model.attention == "mla":
        return _mla_ops(model, dtypes, tp)
    L, h, act = model.num_layers, model.hidden_size, _b(dtypes.activations)
    kvb, hid = _b(dtypes.kv_cache), hidden_bytes(dtypes)
    qh, hd, kvh = model.num_heads // tp, model.head_dim, kv_heads_per_device(model, tp)
    local = _local_layers(model)
    full = L - sum(n for _, n, _ in local)
    # live at the peak: the QKV output
    qkv = (qh + 2 * kvh) * hd
    ops = [_proj(model, dtypes, "qkv_proj", qkv, h, act_bytes=qkv * hid)]
    if model.position == "rope" and not rope_fused:
        # ALiBi and learned positions have no rotary kernel; an engine that rotates Q/K inside
        # the attention kernel skips this pass
        rope_row = 2 * (qh + kvh) * hd * act * model.rotary_fraction  # partial rotary
        ops.append(Op("rope", "elementwise", ATTENTION, L, TOKENS, bytes_per_row=rope_row))
    common = dict(q_heads=qh, kv_heads=kvh, head_dim=hd, qk_dim=hd, v_dim=hd,
                  attn_dtype=_attn_dtype(dtypes))  # fmt: skip
    # K and V of a context token: what the KV cache stores per layer (memory.py sizes it the same way)
    kv_tok, qo_tok = kv_elems_per_token_layer_device(model, tp) * kvb, 2 * qh * hd * act
    for suffix, count, window in (("", full, 0), *local):
        if count:
            for phase in ("attn_prefill", "attn_decode"):
                ops.append(
                    Op(phase + suffix, phase, ATTENTION, count, ATTN, window=window,
                       kv_tok_bytes=kv_tok, qo_tok_bytes=qo_tok, **common)
                )  # fmt: skip
    ops.append(_proj(model, dtypes, "o_proj", h, qh * hd))
    return ops


def _mla_ops(model: ModelSpec, dtypes: DTypes, tp: int) -> list[Op]:
    """Multi-head latent attention (DeepSeek-V2/V3): projections through the latents, the
    attention kernels (prefill up-projected, decode weight-absorbed)."""
    L, h, act = model.num_layers, model.hidden_size, _b(dtypes.activations)
    kvb, hid, qh = _b(dtypes.kv_cache), hidden_bytes(dtypes), model.num_heads // tp
    full = L - sum(n for _, n, _ in _local_layers(model))
    nope, rope, v, r = (
        model.qk_nope_head_dim,
        model.qk_rope_head_dim,
        model.v_head_dim,
        model.kv_lora_rank,
    )
    qk = nope + rope
    ops: list[Op] = []
    if model.q_lora_rank:
        ops.append(_proj(model, dtypes, "q_a_proj", model.q_lora_rank, h))
        ops.append(_proj(model, dtypes, "q_b_proj", qh * qk, model.q_lora_rank))
    else:
        ops.append(_proj(model, dtypes, "q_proj", qh * qk, h))
    ops.append(_proj(model, dtypes, "kv_a_proj", r + rope, h))
    # prefill: up-project the latents of the new and the cached tokens (not absorbed); live
    # at the peak: Q, K and V of the prefill path (estimate: 2 x heads x (qk + v))
    ops.append(_proj(model, dtypes, "kv_b_proj", qh * (nope + v), r, PREFILL_KV,
                     act_bytes=qh * (qk + v) * 2 * hid))  # fmt: skip
    ops.append(
        Op("rope", "elementwise", ATTENTION, L, TOKENS, bytes_per_row=2 * (qh + 1) * rope * act)
    )
    latent = kv_elems_per_token_layer_device(model, tp) * kvb  # the cached latent + rope key
    kinds = [
        ("attn_prefill", dict(kv_heads=qh, head_dim=qk, qk_dim=qk, v_dim=v, kv_tok_bytes=qh * (qk + v) * act, qo_tok_bytes=qh * (qk + v) * act)),
        # decode absorbs W_UK / W_UV: MQA over the compressed latent (kv_lora_rank + rope per token)
        ("attn_decode", dict(kv_heads=1, head_dim=r + rope, qk_dim=r + rope, v_dim=r, kv_tok_bytes=latent, qo_tok_bytes=qh * (2 * r + rope) * act)),
    ]  # fmt: skip
    for name, kw in kinds:
        ops.append(Op(name, name, ATTENTION, full, ATTN, q_heads=qh, window=0,
                      attn_dtype=_attn_dtype(dtypes), **kw))  # fmt: skip
    # the absorbed decode path multiplies by kv_b_proj's weights (held there)
    ops.append(_proj(model, dtypes, "mla_q_absorb", qh * r, nope, DECODE, held=0))
    ops.append(_proj(model, dtypes, "mla_v_absorb", qh * v, r, DECODE, held=0))
    ops.append(_proj(model, dtypes, "o_proj", h, qh * v))
    return ops


def _ffn_ops(
    model: ModelSpec, dtypes: DTypes, parallel: Parallelism, moe_comm: str = "alltoall"
) -> list[Op]:
    """Dense MLP layers and MoE layers (router, experts, shared experts, EP all-to-all)."""
    return _dense_ops(model, dtypes, parallel.tp) + _moe_ops(model, dtypes, parallel, moe_comm)


def _dense_ops(model: ModelSpec, dtypes: DTypes, tp: int) -> list[Op]:
    """The dense MLP of the dense layers (gate and up fused), sharded over tp."""
    h, act, hid = model.hidden_size, _b(dtypes.activations), hidden_bytes(dtypes)
    wb = _b(dtypes.weights)
    dense, _ = layer_counts(model)
    up = 2 if model.gated_mlp else 1
    ops: list[Op] = []
    if dense and model.intermediate_size:
        i = model.intermediate_size // tp
        d = dict(scope=DENSE, param_bytes=wb)
        # live at the peak: gate, up and their product (x3, as for every MLP: an estimate)
        ops.append(Op("mlp_gate_up", "gemm", FFN, dense, TOKENS, dims=((up * i, h),),
                      params=up * i * h, act_bytes=3 * i * hid, **d))  # fmt: skip
        ops.append(
            # reads the 16-bit gate/up output, writes the next GEMM's input
            Op("mlp_act", "elementwise", FFN, dense, TOKENS, bytes_per_row=up * i * hid + i * act,
               scope=DENSE)
        )  # fmt: skip
        ops.append(Op("mlp_down", "gemm", FFN, dense, TOKENS, dims=((h, i),), params=h * i, **d))
        if tp > 1:
            ops.append(Op("tp_allreduce", "allreduce", FFN, dense, TOKENS, bytes_per_row=h * hid,
                          group=tp, scope=DENSE))  # fmt: skip
    return ops


def _moe_ops(model: ModelSpec, dtypes: DTypes, parallel: Parallelism, moe_comm: str) -> list[Op]:
    """The MoE layers: router, token exchange, routed experts, shared experts, reduction."""
    _, moe = layer_counts(model)
    if not moe:
        return []
    tp, ep, dp = parallel.tp, parallel.ep, parallel.dp_attn
    h, act, hid = model.hidden_size, _b(dtypes.activations), hidden_bytes(dtypes)
    wb = _b(dtypes.weights)
    up = 2 if model.gated_mlp else 1
    ops: list[Op] = []
    E, k = model.num_experts, model.experts_per_token
    etp = tp * dp // ep  # devices sharing one expert's weights (TP inside the expert)
    im = model.moe_intermediate_size // etp
    router_dt = _low_precision_kept(dtypes)
    # the router's weights are counted 16-bit, like the norms
    ops.append(Op("moe_router", "gemm", FFN, moe, TOKENS, dims=((E, h),), dtypes=router_dt,
                  scope=MOE, params=E * h, param_bytes=2.0))  # fmt: skip
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
        ops.append(Op("dp_allgather", "allgather", FFN, moe, TOKENS, local=False, scope=MOE,
                      bytes_per_row=h * (hid if ep == 1 else act), group=tp * dp))  # fmt: skip
    if ep > 1 and not gather and (dp > 1 or moe_comm == "alltoall"):
        # bytes_per_row: one copy of a token's hidden state per device of the group (the
        # fan-out to its topk experts and the per-node de-duplication are comm.ep_alltoall's)
        ops.append(Op("ep_dispatch", "alltoall", FFN, moe, TOKENS, local=False, scope=MOE,
                      bytes_per_row=h * act / ep, group=ep, topk=k))  # fmt: skip
    # top-k selection over the router logits: read E fp32 logits, write k ids and weights
    ops.append(Op("moe_topk", "elementwise", FFN, moe, TOKENS, bytes_per_row=E * 4 + k * 8,
                  scope=MOE))  # fmt: skip
    xp = dict(local=False, num_experts=E, topk=k, ep=ep, scope=MOE)
    held = E // ep  # experts one device holds, each a 1/etp shard
    # permute: each routed copy of a token is gathered into its expert's rows (read + write);
    # un-permute: each expert output row is read and the k rows of a token summed, weighted
    # (vLLM moe_align/permute + moe_sum, SGLang/TRT-LLM expand/finalize kernels)
    ops.append(Op("moe_permute", "experts", FFN, moe, TOKENS, bytes_per_row=2 * h * act, **xp))
    # live at the peak: each token's k expert rows, x3 as for a dense MLP (with the shared ones)
    ops.append(Op("moe_experts_gate_up", "experts", FFN, moe, TOKENS, dims=((up * im, h),),
                  params=held * up * im * h, param_bytes=wb, act_bytes=3 * (k * im) * hid, **xp))  # fmt: skip
    moe_act_row = up * im * hid + im * act
    ops.append(Op("moe_act", "experts", FFN, moe, TOKENS, bytes_per_row=moe_act_row, **xp))
    ops.append(Op("moe_experts_down", "experts", FFN, moe, TOKENS, dims=((h, im),),
                  params=held * h * im, param_bytes=wb, **xp))  # fmt: skip
    # un-permute: each expert output row is read and each token written once; the passes some
    # engines' kernels make over the other EP ranks' rows are charged by the experts' time
    # function (roofline.moe_other_rows_time, fitted moe_token_passes)
    unpermute_row = h * hid * (1.0 + 1.0 / k)
    a2a = ep > 1 and not gather and (dp > 1 or moe_comm == "alltoall")
    ops.append(Op("moe_unpermute", "experts", FFN, moe, TOKENS, bytes_per_row=unpermute_row,
                  all_tokens=ep > 1 and not a2a, **xp))  # fmt: skip
    if a2a:
        # expert outputs come back 16-bit (DeepEP: fp8 dispatch, bf16 combine)
        ops.append(Op("ep_combine", "alltoall", FFN, moe, TOKENS, local=False, scope=MOE,
                      bytes_per_row=h * hid / ep, group=ep, topk=k))  # fmt: skip
    sw = shared_expert_width(model) // tp
    if sw:
        ops.append(Op("shared_experts", "gemm", FFN, moe, TOKENS, dims=((up * sw, h), (h, sw)),
                      scope=MOE, params=up * sw * h + h * sw, param_bytes=wb,
                      act_bytes=3 * sw * hid))  # fmt: skip
    if gather:
        ops.append(Op("dp_reducescatter", "reducescatter", FFN, moe, TOKENS, local=False,
                      scope=MOE, bytes_per_row=h * hid, group=tp * dp))  # fmt: skip
    elif tp > 1:
        ops.append(Op("tp_allreduce", "allreduce", FFN, moe, TOKENS, bytes_per_row=h * hid,
                      group=tp, scope=MOE))  # fmt: skip
    return ops


def _af_link_ops(model: ModelSpec, dtypes: DTypes) -> list[Op]:
    """What an attention/FFN split ships per layer (afstep.py times it on the AF link): each
    token's hidden state to the FFN side in the activation format (fp8 dispatch, as DeepEP) and
    back 16-bit (the combine); a MoE token goes to every FFN rank holding one of its experts."""
    h, L = model.hidden_size, model.num_layers
    moe = dict(num_experts=model.num_experts, topk=model.experts_per_token)
    return [
        Op("af_dispatch", "af_link", LINK, L, TOKENS, bytes_per_row=h * _b(dtypes.activations), **moe),
        Op("af_combine", "af_link", LINK, L, TOKENS, bytes_per_row=h * hidden_bytes(dtypes), **moe),
    ]  # fmt: skip


def merge_ops(ops, across_parts: bool = False) -> tuple[Op, ...]:
    """Operators equal but for their count (and scope; with ``across_parts`` their part) run as
    one row with the counts added, in first-seen order. A dense and a MoE copy of a weightless
    operator (a TP all-reduce) merge into one that runs in every layer."""
    out: dict[tuple, Op] = {}
    for op in ops:
        key = op._replace(count=0, scope="", part="" if across_parts else op.part)
        old = out.get(key)
        if old is None:
            out[key] = op
            continue
        if old.scope != op.scope and (old.params or op.params):
            raise AssertionError(f"{op.name}: weights in two scopes ({old.scope}, {op.scope})")
        scope = old.scope if old.scope == op.scope else LAYER
        out[key] = old._replace(count=old.count + op.count, scope=scope)
    return tuple(out.values())


def _check_scopes(model: ModelSpec, ops: list[Op]) -> None:
    """An operator holding weights runs once per layer of its scope (the stage split counts its
    weights by scope): catches an entry that forgot ``scope=DENSE`` / ``scope=MOE``."""
    dense, moe = layer_counts(model)
    layers = {LAYER: model.num_layers, DENSE: dense, MOE: moe, FIRST: 1, LAST: 1}
    for op in ops:
        if op.params and op.count != layers.get(op.scope):
            raise AssertionError(
                f"operator {op.name}: holds weights, runs {op.count} times, but scope {op.scope!r} "
                f"has {layers.get(op.scope, 0)} layers"
            )


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
    ``redundant_experts``: EPLB replicas, which let ep divide the experts + replicas), then the
    attention/FFN link operators (part LINK)."""
    validate_parallelism(model, parallel, model.name, redundant=redundant_experts)
    tp, pp, dp = parallel.tp, parallel.pp, parallel.dp_attn
    L, h, hid = model.num_layers, model.hidden_size, hidden_bytes(dtypes)
    edge = _low_precision_kept(dtypes)
    table = model.vocab_size // tp * h  # embedding / LM head shard
    ops = [
        Op("embedding", "elementwise", ATTENTION, 1, TOKENS, bytes_per_row=h * (_b(edge.weights) + hid),
           scope=FIRST, params=table, param_bytes=_b(edge.weights))
    ]  # fmt: skip
    # fused residual add + RMSNorm: read x and residual, write both (the 4 x hidden also live at
    # the activation peak). It holds the layer's norm weights, counted 16-bit: two hidden-size
    # vectors (pre-attention, pre-MLP), plus MLA's q/kv latent norms.
    norms = 2 * h + (
        (model.q_lora_rank or 0) + model.kv_lora_rank if model.attention == "mla" else 0
    )
    ops.append(Op("input_norm", "elementwise", ATTENTION, L, TOKENS, bytes_per_row=4 * h * hid,
                  params=norms, param_bytes=2.0, act_bytes=4 * h * hid))  # fmt: skip
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
        ops.append(Op("pp_send", "p2p", ATTENTION, pp - 1, TOKENS, bytes_per_row=2 * h * hid,
                      scope=BETWEEN))  # fmt: skip
    # its hidden-size weights are left out of the weight bytes (a few KB; param_counts adds them)
    ops.append(Op("final_norm", "elementwise", ATTENTION, 1, TOKENS, bytes_per_row=2 * h * hid,
                  scope=LAST))  # fmt: skip
    # tied embeddings: the LM head reads the embedding's table (no weights of its own); live at
    # the peak: fp32 logits of the sampled rows
    ops.append(Op("lm_head", "gemm", ATTENTION, 1, SAMPLED, dims=((model.vocab_size // tp, h),),
                  dtypes=edge, scope=LAST, params=0 if model.tie_word_embeddings else table,
                  param_bytes=_b(edge.weights), act_bytes=model.vocab_size // tp * 4.0))  # fmt: skip
    ops += _af_link_ops(model, dtypes)
    _check_scopes(model, ops)
    stage = tp * dp
    return ModelOps(merge_ops(ops), tp, pp, parallel.ep, dp, stage, stage * pp, dtypes.compute)


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
