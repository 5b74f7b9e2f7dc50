"""Model FLOPs per token (the 6ND rule plus attention) and the memory one device holds.

Conventions, stated once (docs/training.md):
- model FLOPs: forward = 2 x (matmul weights one token touches, LM head included, embedding
  lookup and norms excluded) + attention scores and values; training = 3 x forward (backward is
  twice the forward). Causal attention counts the pairs a causal mask keeps (half of s^2):
  ``causal_halved=False`` gives the whole-square convention some papers use.
- hardware FLOPs add what recomputation runs again (full: one more forward).
"""

from __future__ import annotations

from servesim.cost.ops import layer_counts
from servesim.specs.model import ModelSpec
from servesim.training.layout import TrainLayout


def matmul_params(model: ModelSpec) -> int:
    """Weights of the GEMMs one token goes through (active experts only), LM head included."""
    dense, moe = layer_counts(model)
    body = (
        model.num_layers * model.attention_params_per_layer
        + dense * model.mlp_params_per_layer
        + moe * model.moe_active_params_per_layer
    )
    return body + model.lm_head_params


def mean_keys(model: ModelSpec, seq_len: int, causal_halved: bool = True) -> float:
    """Keys one query attends to, averaged over the layers (sliding windows cap them)."""
    full = seq_len / 2.0 if causal_halved else float(seq_len)
    local = 0.0
    n_local = 0
    for window, n in ((model.sliding_window, model.sliding_layers),
                      (model.attention_chunk_size, model.chunked_layers)):  # fmt: skip
        if window and n:
            w = min(window, seq_len)
            keys = w * (1.0 - w / (2.0 * seq_len)) if causal_halved else float(w)
            local += n * keys
            n_local += n
    return (local + (model.num_layers - n_local) * full) / model.num_layers


def attention_flops_per_token(model: ModelSpec, seq_len: int, causal_halved: bool = True) -> float:
    """Forward FLOPs of scores (QK^T) and values (PV) per token, all layers."""
    if model.attention == "mla":
        qk, v = model.qk_nope_head_dim + model.qk_rope_head_dim, model.v_head_dim
    else:
        qk = v = model.head_dim
    keys = mean_keys(model, seq_len, causal_halved)
    return 2.0 * model.num_heads * (qk + v) * keys * model.num_layers


def forward_flops_per_token(model: ModelSpec, seq_len: int, causal_halved: bool = True) -> float:
    return 2.0 * matmul_params(model) + attention_flops_per_token(model, seq_len, causal_halved)


def model_flops_per_token(model: ModelSpec, seq_len: int, causal_halved: bool = True) -> float:
    """Training model FLOPs per token: 3 x forward (6N + attention)."""
    return 3.0 * forward_flops_per_token(model, seq_len, causal_halved)


def hardware_flops_per_token(model: ModelSpec, layout: TrainLayout) -> float:
    """Model FLOPs plus recomputation: full recompute runs the forward once more; selective
    recompute re-runs only element-wise ops and (inside FlashAttention's backward, counted in
    both) the attention core, so it adds no FLOPs here."""
    fwd = forward_flops_per_token(model, layout.seq_len)
    return 3.0 * fwd + (fwd if layout.recompute == "full" else 0.0)
