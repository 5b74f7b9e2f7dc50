"""HF config normalisers for the families beyond Llama-style blocks (loaded by servesim.specs.model).

GPT-2 (and Megatron GPT-3-style configs), BLOOM, GPT-NeoX/Pythia, Falcon, Phi/Phi-3, OLMo/OLMo 2,
OPT, Nemotron and MiniMax. Each reads the keys its transformers config class defines, with that
class's defaults where the key may be absent, and sets the architecture fields of ModelSpec that
change parameter counts and costs: MLP activation and gating, LayerNorm vs RMSNorm, biases, learned
positions vs rotary (partial) vs ALiBi, parallel attention + MLP blocks, multi-query attention.
"""

from __future__ import annotations

from typing import Any

from servesim.specs.common import SpecError


def _float(r: Any, key: str, default: float) -> float:
    value = r.data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise SpecError(r.where, r.field(key), value, "must be a number in (0, 1]")
    return float(value)


def _shape(r: Any, hidden: int, layers: int, heads: int, kv_heads: int, vocab: int) -> dict:
    if hidden % heads:
        raise SpecError(
            r.where, r.field("hidden_size"), hidden, f"must be divisible by the {heads} heads"
        )
    return {
        "hidden_size": hidden,
        "num_layers": layers,
        "num_heads": heads,
        "num_kv_heads": kv_heads,
        "head_dim": hidden // heads,
        "vocab_size": vocab,
        "attention": "mha" if kv_heads == heads else "gqa",
    }


def _first(r: Any, *keys: str, default: Any = ...) -> Any:
    """The first of several aliases present (GPT-2's n_embd vs hidden_size)."""
    for key in keys:
        if key in r.data:
            return r.int(key)
    return r.int(keys[0], default)


def gpt2(r: Any) -> dict[str, Any]:
    """GPT-2 (GPT2LMHeadModel): learned positions, pre-LayerNorm, GELU 4h MLP, biases, tied head.
    Megatron's GPT-3-style models use the same block."""
    h = _first(r, "n_embd", "hidden_size")
    heads = _first(r, "n_head", "num_attention_heads")
    fields = _shape(
        r, h, _first(r, "n_layer", "num_hidden_layers"), heads, heads, r.int("vocab_size")
    )
    inner = r.data.get("n_inner")
    fields.update(
        intermediate_size=r.int("n_inner") if inner is not None else 4 * h,
        max_position_embeddings=_first(r, "n_positions", "max_position_embeddings", default=1024),
        tie_word_embeddings=r.bool("tie_word_embeddings", True),
        gated_mlp=False, mlp_activation="gelu", norm="layernorm", norm_params_scale=2,
        position="learned", attn_bias=True, mlp_bias=True,
    )  # fmt: skip
    return fields


def bloom(r: Any) -> dict[str, Any]:
    """BLOOM: ALiBi (no position embedding), LayerNorm after the embedding too, GELU 4h, biases."""
    h = _first(r, "hidden_size", "n_embed")
    heads = _first(r, "n_head", "num_attention_heads")
    fields = _shape(
        r, h, _first(r, "n_layer", "num_hidden_layers"), heads, heads, r.int("vocab_size")
    )
    fields.update(
        intermediate_size=4 * h, tie_word_embeddings=r.bool("tie_word_embeddings", True),
        gated_mlp=False, mlp_activation="gelu", norm="layernorm", norm_params_scale=2,
        position="alibi", attn_bias=True, mlp_bias=True,
        extra_params=2 * h,  # word_embeddings_layernorm (weight + bias)
    )  # fmt: skip
    return fields


def gpt_neox(r: Any) -> dict[str, Any]:
    """GPT-NeoX / Pythia: partial rotary (rotary_pct), parallel residual, LayerNorm, biases."""
    h, heads = r.int("hidden_size"), r.int("num_attention_heads")
    fields = _shape(r, h, r.int("num_hidden_layers"), heads, heads, r.int("vocab_size"))
    fields.update(
        intermediate_size=r.int("intermediate_size"),
        max_position_embeddings=r.int("max_position_embeddings", 0, minimum=0),
        tie_word_embeddings=r.bool("tie_word_embeddings", False),
        rotary_fraction=_float(r, "rotary_pct", 0.25),
        parallel_block=r.bool("use_parallel_residual", True),
        gated_mlp=False, mlp_activation="gelu", norm="layernorm", norm_params_scale=2,
        attn_bias=r.bool("attention_bias", True), mlp_bias=True,
    )  # fmt: skip
    return fields


def falcon(r: Any) -> dict[str, Any]:
    """Falcon: multi-query (7B) or grouped KV (new_decoder_architecture: 40B/180B), parallel
    attention + MLP, LayerNorm, no biases; ALiBi when `alibi` is set (rotary otherwise)."""
    h = r.int("hidden_size")
    heads = _first(r, "num_attention_heads", "n_head")
    new_arch = r.bool("new_decoder_architecture", False)
    if new_arch:
        kv = _first(r, "num_kv_heads", "n_head_kv", default=heads)
    else:
        kv = 1 if r.bool("multi_query", True) else heads
    fields = _shape(r, h, _first(r, "num_hidden_layers", "n_layer"), heads, kv, r.int("vocab_size"))
    parallel = r.bool("parallel_attn", True)
    norms = 2 if not parallel or (new_arch and r.data.get("num_ln_in_parallel_attn") != 1) else 1
    bias = r.bool("bias", False)
    fields.update(
        attention="mqa" if kv == 1 else fields["attention"],
        intermediate_size=r.int("ffn_hidden_size", 4 * h),
        max_position_embeddings=r.int("max_position_embeddings", 0, minimum=0),
        tie_word_embeddings=r.bool("tie_word_embeddings", True),
        parallel_block=parallel, norms_per_layer=norms,
        position="alibi" if r.bool("alibi", False) else "rope",
        gated_mlp=False, mlp_activation="gelu", norm="layernorm", norm_params_scale=2,
        attn_bias=bias, mlp_bias=bias,
    )  # fmt: skip
    return fields


def phi(r: Any) -> dict[str, Any]:
    """Phi-1/1.5/2: parallel block with one LayerNorm, partial rotary, GELU 4h, biases, untied
    head with a bias."""
    h, heads = r.int("hidden_size"), r.int("num_attention_heads")
    kv = r.int("num_key_value_heads", heads)
    fields = _shape(r, h, r.int("num_hidden_layers"), heads, kv, r.int("vocab_size"))
    fields.update(
        intermediate_size=r.int("intermediate_size"),
        max_position_embeddings=r.int("max_position_embeddings", 0, minimum=0),
        tie_word_embeddings=r.bool("tie_word_embeddings", False),
        rotary_fraction=_float(r, "partial_rotary_factor", 0.5),
        parallel_block=True, norms_per_layer=1,
        gated_mlp=False, mlp_activation="gelu", norm="layernorm", norm_params_scale=2,
        attn_bias=True, mlp_bias=True, lm_head_bias=True,
    )  # fmt: skip
    return fields


def with_partial_rotary(dense: Any) -> Any:
    """Llama-shaped families with an optional partial_rotary_factor (Phi-3/Phi-4-mini)."""

    def normalise(r: Any) -> dict[str, Any]:
        fields = dense(r)
        fields["rotary_fraction"] = _float(r, "partial_rotary_factor", 1.0)
        return fields

    return normalise


def olmo(dense: Any) -> Any:
    """OLMo: Llama-shaped with a non-parametric LayerNorm (no weights). OLMo 2/3: RMSNorm after
    attention and MLP plus q/k norms over the full projections."""

    def normalise(r: Any) -> dict[str, Any]:
        fields = dense(r)
        if r.data.get("model_type", "olmo") == "olmo":
            fields.update(norm="layernorm", norm_params_scale=0)
        else:
            q = fields["num_heads"] * fields["head_dim"]
            fields["extra_params"] = fields["num_layers"] * (
                q + fields["num_kv_heads"] * fields["head_dim"]
            )
        return fields

    return normalise


def opt(r: Any) -> dict[str, Any]:
    """OPT: learned positions (2 offset rows), ReLU 4h MLP, LayerNorm, biases, tied head;
    350M projects between word_embed_proj_dim and hidden_size."""
    h, heads = r.int("hidden_size"), r.int("num_attention_heads")
    fields = _shape(r, h, r.int("num_hidden_layers"), heads, heads, r.int("vocab_size"))
    proj = r.int("word_embed_proj_dim", h)
    bias = r.bool("enable_bias", True)
    # the embedding table is vocab x word_embed_proj_dim; project_in/out map it to hidden_size
    extra = 2 * h + (2 * proj * h - fields["vocab_size"] * (h - proj) if proj != h else 0)
    final_ln = r.bool("do_layer_norm_before", True) and not r.data.get("_remove_final_layer_norm")
    fields.update(
        intermediate_size=r.int("ffn_dim"),
        max_position_embeddings=r.int("max_position_embeddings", 2048),
        tie_word_embeddings=r.bool("tie_word_embeddings", True),
        gated_mlp=False, mlp_activation="relu", norm="layernorm", norm_params_scale=2,
        position="learned", attn_bias=bias, mlp_bias=bias,
        extra_params=extra - (0 if final_ln else 2 * h),
    )  # fmt: skip
    return fields


def nemotron(dense: Any) -> Any:
    """Nemotron(-4): squared-ReLU non-gated MLP, LayerNorm1P (weight + bias), partial rotary."""

    def normalise(r: Any) -> dict[str, Any]:
        fields = dense(r)
        fields.update(
            gated_mlp=False, mlp_activation="relu2", norm="layernorm", norm_params_scale=2,
            rotary_fraction=_float(r, "partial_rotary_factor", 0.5),
            attn_bias=r.bool("attention_bias", False), mlp_bias=r.bool("mlp_bias", False),
        )  # fmt: skip
        return fields

    return normalise


def minimax(mixtral: Any) -> Any:
    """MiniMax-Text-01 / M1 (hybrid: lightning linear attention in most layers) and MiniMax-M2
    (full attention): MoE in every layer. A lightning layer's weights are q, k, v, an output gate
    (h -> heads*head_dim each), the output projection and a norm; the cost model runs those
    layers as full attention (an upper bound on their attention time)."""

    def normalise(r: Any) -> dict[str, Any]:
        fields = mixtral(r)
        kinds = r.data.get("attn_type_list") or r.data.get("layer_types") or []
        if not isinstance(kinds, list):
            raise SpecError(r.where, r.field("attn_type_list"), kinds, "must be a list")
        linear = sum(1 for k in kinds if k in (0, "linear_attention"))
        if linear:
            h, heads, hd, kv = (
                fields[k] for k in ("hidden_size", "num_heads", "head_dim", "num_kv_heads")
            )
            lightning = 5 * h * heads * hd + heads * hd
            softmax = 2 * h * heads * hd + 2 * h * kv * hd
            fields["extra_params"] = linear * (lightning - softmax)
        return fields

    return normalise


# transformers' class defaults for a multimodal wrapper whose text_config lists only what differs
# (google/gemma-3-4b-it ships hidden_size, intermediate_size, num_hidden_layers, sliding_window):
# Gemma3TextConfig.__init__ defaults (transformers 4.50, models/gemma3/configuration_gemma3.py).
TEXT_CONFIG_DEFAULTS: dict[str, dict[str, Any]] = {
    "Gemma3ForConditionalGeneration": {
        "vocab_size": 262208,
        "hidden_size": 2304,
        "intermediate_size": 9216,
        "num_hidden_layers": 26,
        "num_attention_heads": 8,
        "num_key_value_heads": 4,
        "head_dim": 256,
        "max_position_embeddings": 131072,
        "sliding_window": 4096,
        "sliding_window_pattern": 6,
        "model_type": "gemma3_text",
    },
}
