"""Memory per device in training: weights, gradients, optimizer states (ZeRO/FSDP sharding) and
activations of the in-flight micro-batches (1F1B / interleaved), on the busiest pipeline stage.

Bytes per parameter follow Megatron-Core's mixed-precision recipe (docs/training.md): 16-bit
weights (2), FP32 main gradients (4), FP32 master weights + Adam moments (12, ``optimizer_bytes``).
ZeRO-1 shards the optimizer over the data-parallel ranks (x CP: Megatron's distributed optimizer
group), ZeRO-2 the gradients too, ZeRO-3/FSDP the weights as well (plus two gathered layers in
flight). Activations per layer count what autograd saves (Korthikanti et al. 2022, arXiv
2205.05198, with FlashAttention: no s^2 score matrix), split by TP (sequence parallel) and CP.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from servesim.cost.ops import kv_heads_per_device, layer_counts
from servesim.specs.model import ModelSpec
from servesim.training.layout import TrainLayout

WEIGHT_BYTES = 2.0
GRAD_BYTES = 4.0
# estimate: CUDA context, NCCL/communicator buffers, allocator fragmentation: 3 GiB per device
# (PyTorch reports ~0.5-1 GiB context; NCCL channels and caching-allocator slack make up the rest).
RESERVED_BYTES = 3 * 2**30
# Bytes per logit at the loss: the 16-bit logits and one fp32 buffer that becomes the gradient
# (Megatron's fused vocab-parallel cross-entropy works in place); PyTorch's cross_entropy on
# fp32-upcast logits (torchtitan) holds the 16-bit logits, the fp32 copy, the saved log-softmax
# and the fp32 gradient at its peak.
LOSS_BYTES = 6.0
LOSS_BYTES_TORCH = 2.0 + 4.0 + 4.0 + 4.0


class Memory(NamedTuple):
    weights: float
    gradients: float
    optimizer: float
    activations: float
    activations_no_recompute: float
    logits: float
    reserved: float

    @property
    def total(self) -> float:
        return (self.weights + self.gradients + self.optimizer + self.activations + self.logits
                + self.reserved)  # fmt: skip


class StageParams(NamedTuple):
    dense: float  # per device, replicated across data-parallel ranks
    expert: float  # per device, replicated across dp*cp/ep ranks


def stage_layers(model: ModelSpec, layout: TrainLayout) -> int:
    """Layers on the busiest pipeline stage (multi-token-prediction blocks count as layers)."""
    return math.ceil((model.num_layers + model.mtp_layers) / layout.pp)


def stage_params(model: ModelSpec, layout: TrainLayout, stage: str = "last") -> StageParams:
    """Parameters one device holds on a pipeline stage: ``last`` has its layers and the LM head,
    ``first`` its layers and the embedding table (a tied table lives on both ends), a single
    stage both (tied: once). Step-time costs use the last stage (it also runs the LM head)."""
    dense_l, moe_l = layer_counts(model)
    frac = stage_layers(model, layout) / model.num_layers
    attn = model.num_layers * model.attention_params_per_layer + model.norm_params
    mlp = dense_l * model.mlp_params_per_layer
    moe_shared = moe_l * (model.router_params_per_layer + model.shared_expert_params_per_layer)
    experts = moe_l * model.num_experts * model.expert_params
    extra = model.bias_params + model.position_params
    if layout.pp == 1:
        ends = model.lm_head_params + (0 if model.tie_word_embeddings else model.embedding_params)
    else:
        ends = model.lm_head_params if stage == "last" else model.embedding_params
    dense = ((attn + mlp + moe_shared + extra) * frac + ends) / layout.tp
    expert = experts * frac / (layout.tp * layout.ep)
    return StageParams(dense, expert)


def activation_bytes_per_layer(model: ModelSpec, layout: TrainLayout) -> tuple[float, float]:
    """(saved bytes under the layout's policy, saved bytes without recomputation) of one layer
    and one micro-batch on one device."""
    T = layout.micro_batch * layout.seq_len / layout.cp  # tokens on this CP rank
    tp, h = layout.tp, model.hidden_size
    # FP8 recipes save the FP8 copy of each GEMM input for the backward (Transformer Engine,
    # DeepSeek-V3 section 3.3): one byte per element instead of two; torchao's float8 training
    # (torchtitan) saves the 16-bit inputs and casts them again in the backward
    low = layout.dtype in ("fp8", "fp8-block", "nvfp4")
    b = 1.0 if low and layout.framework != "torchtitan" else 2.0
    sp = tp if layout.sequence_parallel else 1
    qh = model.num_heads / tp
    if model.attention == "mla":
        q_width = qh * (model.qk_nope_head_dim + model.qk_rope_head_dim)
        kv_width = qh * (model.qk_nope_head_dim + model.qk_rope_head_dim + model.v_head_dim)
        o_width = qh * model.v_head_dim
    else:
        kvh = kv_heads_per_device(model, tp)
        q_width, kv_width = qh * model.head_dim, 2 * kvh * model.head_dim
        o_width = q_width
    norms = 2.0 * h * 2.0 / sp  # norm inputs (the residual stream), sequence-parallel
    attn = (h / sp + q_width + kv_width + o_width) * b + 4.0 * qh  # GEMM inputs, Q/K/V, O, LSE
    up = 2 if model.gated_mlp else 1
    dense_l, moe_l = layer_counts(model)
    mlp = 0.0
    if dense_l:
        i = model.intermediate_size / tp
        mlp += dense_l / model.num_layers * ((h / sp + up * i + i) * b)
    if moe_l:
        k, im = model.experts_per_token, model.moe_intermediate_size / tp
        shared = model.num_shared_experts * model.shared_expert_intermediate_size / tp
        routed = k * (h + up * im + im) * b  # dispatched copies, expert up/act outputs
        mlp += moe_l / model.num_layers * (h / sp * b + routed + (up + 1) * shared * b)
    # what selective recomputation re-creates instead of saving: norm outputs, activation outputs
    act_width = (model.intermediate_size if dense_l else model.experts_per_token
                 * model.moe_intermediate_size) / tp  # fmt: skip
    elementwise = (2.0 * h / sp + act_width) * b
    full_saved = (attn + mlp + norms) * T
    if layout.framework == "megatron-legacy":  # softmax output, dropout mask and output: 5 B/score
        scores = 5.0 * qh * layout.seq_len * T
        if layout.recompute == "none":
            return full_saved + scores, full_saved + scores
        full_saved += scores
    if layout.recompute == "full":
        return h / sp * b * T, full_saved  # the layer input only
    if layout.recompute == "selective" and layout.framework == "torchtitan":
        # op-level selective checkpointing: the layer input, the attention output and every
        # second matmul output are saved; everything else is recomputed
        i = (model.intermediate_size if dense_l else model.experts_per_token
             * model.moe_intermediate_size) / tp  # fmt: skip
        gemm_out = q_width + kv_width + h + up * i + h
        saved = (h / sp + o_width + 0.5 * gemm_out) * 2.0 + 4.0 * qh
        return min(saved * T, full_saved), full_saved
    if layout.recompute == "selective":
        return max(full_saved - elementwise * T, 0.0), full_saved
    return full_saved, full_saved


def in_flight_microbatches(model: ModelSpec, layout: TrainLayout) -> float:
    """Micro-batches whose activations stage 0 holds at its peak: pp under 1F1B (DualPipe too:
    it holds about as many, with two model copies' worth of micro-batches each half); interleaving
    adds (pp-1)/(pp*vp) of a stage's worth (Narayanan et al. 2021, arXiv 2104.04473)."""
    m = layout.microbatches
    if layout.pp == 1:
        return 1.0
    base = min(layout.pp, m)
    return base * (1.0 + (layout.pp - 1) / (layout.pp * layout.vp)) if layout.vp > 1 else base


def memory(model: ModelSpec, layout: TrainLayout) -> Memory:
    """Memory of the busiest device: the first pipeline stage (embedding, the most micro-batches
    in flight) or the last (LM head, logits, one micro-batch in flight under plain 1F1B),
    whichever needs more."""
    if layout.pp == 1:
        return _stage_memory(model, layout, "last", 1.0, with_logits=True)
    first = _stage_memory(model, layout, "first", in_flight_microbatches(model, layout), False)
    # the last device of an interleaved pipeline also holds earlier virtual stages' micro-batches
    last_inflight = 1.0 if layout.vp == 1 else in_flight_microbatches(model, layout)
    last = _stage_memory(model, layout, "last", last_inflight, with_logits=True)
    return max(first, last, key=lambda m: m.total)


def _stage_memory(model: ModelSpec, layout: TrainLayout, stage: str, inflight: float,
                  with_logits: bool) -> Memory:  # fmt: skip
    sp = stage_params(model, layout, stage)
    shard = layout.dp * layout.cp
    expert_shard = max(1, shard // layout.ep)
    z = layout.zero_stage
    params = sp.dense + sp.expert
    # FSDP2 (torchtitan) keeps the sharded parameters in fp32 and uses them as the master copy:
    # 4 + 4 + 8 bytes instead of Megatron's 2 + 4 + 12
    fsdp2 = z >= 3 and layout.framework == "torchtitan"
    wb = 4.0 if fsdp2 else WEIGHT_BYTES
    opt_bytes = layout.optimizer_bytes - 4.0 if fsdp2 else layout.optimizer_bytes
    sharded = sp.dense / shard + sp.expert / expert_shard
    w = wb * (sharded if z >= 3 else params)
    if z >= 3 and fsdp2 and layout.pp > 1:
        # torchtitan does not reshard after forward under pipelining (reshard_after_forward =
        # not pp_enabled): the stage's 16-bit weights stay gathered across micro-batches
        w += WEIGHT_BYTES * params
    elif z >= 3:  # two gathered 16-bit layers in flight (prefetch)
        w += 2 * WEIGHT_BYTES * params / stage_layers(model, layout)
    g = GRAD_BYTES * (sharded if z >= 2 else params)
    o = opt_bytes * (sharded if z >= 1 else params)
    per_layer, per_layer_none = activation_bytes_per_layer(model, layout)
    layers = stage_layers(model, layout)
    acts = per_layer * layers * inflight
    if layout.recompute == "full":  # one layer's full activations exist during its recompute
        acts += per_layer_none
    acts_none = per_layer_none * layers * inflight
    T = layout.micro_batch * layout.seq_len / layout.cp
    # bf16 logits + fp32 loss gradient, on the stage that runs the LM head
    loss_bytes = LOSS_BYTES_TORCH if layout.framework == "torchtitan" else LOSS_BYTES
    logits = T * model.vocab_size / layout.tp * loss_bytes if with_logits else 0.0
    return Memory(w, g, o, acts, acts_none, logits, float(RESERVED_BYTES))
