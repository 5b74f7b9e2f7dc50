"""HF config normalisers: one function per architecture family turns a config's keys into
ModelSpec fields (servesim.specs.model builds the spec and validates it). The Llama-like
families are here; the older and rarer ones (GPT-2, Bloom, Falcon, Phi, OPT, ...) in
model_families.py. Keep ``NORMALISERS`` in step with docs/catalog.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from servesim.specs import model_families as _families
from servesim.specs.common import SpecError


class Reader:
    """Strict typed access to one HF config mapping; errors name the file and the key."""

    def __init__(self, data: Mapping[str, Any], where: str, prefix: str):
        self.data, self.where, self.prefix = data, where, prefix

    def field(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def int(self, key: str, default: Any = ..., *, minimum: int = 1) -> Any:
        value = self.data.get(key, default)
        if value is ...:
            raise SpecError(
                self.where, self.field(key), "<missing>", "required by this architecture"
            )
        if value is None and default is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise SpecError(
                self.where, self.field(key), value, f"must be a whole number >= {minimum}"
            )
        return value

    def bool(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise SpecError(self.where, self.field(key), value, "must be true or false")
        return value

    def int_list(self, key: str) -> list[int]:
        value = self.data.get(key) or []
        if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise SpecError(self.where, self.field(key), value, "must be a list of layer indices")
        return value

    def str_list(self, key: str) -> list[str]:
        value = self.data.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise SpecError(self.where, self.field(key), value, "must be a list of strings")
        return value


def _common(r: Reader) -> dict[str, Any]:
    """Keys shared by the Llama-family configs."""
    hidden = r.int("hidden_size")
    heads = r.int("num_attention_heads")
    kv_heads = r.int("num_key_value_heads", heads)
    head_dim = r.int("head_dim", None)
    if head_dim is None:
        if hidden % heads:
            raise SpecError(
                r.where,
                r.field("hidden_size"),
                hidden,
                f"must be divisible by num_attention_heads ({heads}) when head_dim is absent",
            )
        head_dim = hidden // heads
    return {
        "hidden_size": hidden,
        "num_layers": r.int("num_hidden_layers"),
        "num_heads": heads,
        "num_kv_heads": kv_heads,
        "head_dim": head_dim,
        "vocab_size": r.int("vocab_size"),
        "tie_word_embeddings": r.bool("tie_word_embeddings", False),
        "max_position_embeddings": r.int("max_position_embeddings", 0, minimum=0),
        "attention": "mha" if kv_heads == heads else "gqa",
    }


def _sliding_all_layers(r: Reader, fields: dict[str, Any]) -> dict[str, Any]:
    """Mistral/Qwen-style: a sliding_window applies to every layer when set (and enabled)."""
    window = r.int("sliding_window", None)
    if window is not None and r.bool("use_sliding_window", True):
        max_window_layers = r.int("max_window_layers", None, minimum=0)
        layers = fields["num_layers"]
        if max_window_layers is not None and "use_sliding_window" in r.data:
            # Qwen2/3: layers at index >= max_window_layers use the window
            layers = max(0, fields["num_layers"] - max_window_layers)
        if layers:
            fields.update(sliding_window=window, sliding_layers=layers)
    return fields


def _dense(r: Reader) -> dict[str, Any]:
    fields = _common(r)
    fields["intermediate_size"] = r.int("intermediate_size")
    return _sliding_all_layers(r, fields)


def _mixtral(r: Reader) -> dict[str, Any]:
    fields = _common(r)
    layers = fields["num_layers"]
    fields.update(
        intermediate_size=0,
        num_experts=r.int("num_local_experts"),
        experts_per_token=r.int("num_experts_per_tok"),
        moe_intermediate_size=r.int("intermediate_size"),
        moe_layers=layers,
        dense_layers=0,
    )
    return _sliding_all_layers(r, fields)


def _qwen_moe(r: Reader) -> dict[str, Any]:
    """Qwen2-MoE / Qwen3-MoE: MoE where (i+1) % decoder_sparse_step == 0 and i not in mlp_only_layers."""
    fields = _common(r)
    layers = fields["num_layers"]
    experts = r.int("num_experts")
    step = r.int("decoder_sparse_step", 1)
    dense_only = set(r.int_list("mlp_only_layers"))
    moe_layers = sum(1 for i in range(layers) if i not in dense_only and (i + 1) % step == 0)
    shared_width = r.int("shared_expert_intermediate_size", 0, minimum=0)
    fields.update(
        intermediate_size=r.int("intermediate_size") if moe_layers < layers else 0,
        num_experts=experts,
        experts_per_token=r.int("num_experts_per_tok"),
        moe_intermediate_size=r.int("moe_intermediate_size"),
        num_shared_experts=1 if shared_width else 0,
        shared_expert_intermediate_size=shared_width,
        moe_layers=moe_layers,
        dense_layers=layers - moe_layers,
    )
    return _sliding_all_layers(r, fields)


def _deepseek(r: Reader) -> dict[str, Any]:
    """DeepSeek-V2/V3 (and R1): MLA attention, MoE after the first `first_k_dense_replace` layers."""
    fields = _common(r)
    layers = fields["num_layers"]
    experts = r.int("n_routed_experts", 0, minimum=0) or 0
    first_dense = r.int("first_k_dense_replace", 0, minimum=0)
    freq = r.int("moe_layer_freq", 1)
    moe_layers = sum(1 for i in range(layers) if experts and i >= first_dense and i % freq == 0)
    kv_lora = r.int("kv_lora_rank")
    rope = r.int("qk_rope_head_dim")
    nope = r.int("qk_nope_head_dim")
    moe_width = r.int("moe_intermediate_size") if experts else 0
    shared = (r.int("n_shared_experts", 0, minimum=0) or 0) if experts else 0
    fields.update(
        attention="mla",
        head_dim=nope + rope,  # the per-head query/key width of the scores
        num_kv_heads=fields["num_heads"],  # MLA expands the latent to every head
        q_lora_rank=r.int("q_lora_rank", None),
        kv_lora_rank=kv_lora,
        qk_nope_head_dim=nope,
        qk_rope_head_dim=rope,
        v_head_dim=r.int("v_head_dim"),
        intermediate_size=r.int("intermediate_size") if moe_layers < layers else 0,
        num_experts=experts,
        experts_per_token=r.int("num_experts_per_tok") if experts else 0,
        moe_intermediate_size=moe_width,
        num_shared_experts=shared,
        shared_expert_intermediate_size=moe_width if shared else 0,
        moe_layers=moe_layers,
        dense_layers=layers - moe_layers,
        mtp_layers=r.int("num_nextn_predict_layers", 0, minimum=0),
    )
    return fields


def _llama4(r: Reader) -> dict[str, Any]:
    """Llama 4 (text part of text_config): MoE every `interleave_moe_layer_step` layers, one shared expert."""
    fields = _common(r)
    layers = fields["num_layers"]
    step = r.int("interleave_moe_layer_step", 1)
    moe_idx = r.int_list("moe_layers") or list(range(step - 1, layers, step))
    moe_layers = len([i for i in moe_idx if 0 <= i < layers])
    width = r.int("intermediate_size")  # expert (and shared expert) width
    fields.update(
        intermediate_size=r.int("intermediate_size_mlp") if moe_layers < layers else 0,
        num_experts=r.int("num_local_experts"),
        experts_per_token=r.int("num_experts_per_tok"),
        moe_intermediate_size=width,
        num_shared_experts=1,
        shared_expert_intermediate_size=width,
        moe_layers=moe_layers,
        dense_layers=layers - moe_layers,
    )
    chunk = r.int("attention_chunk_size", None)
    if chunk:
        # layers with RoPE use chunked local attention; no_rope_layers[i] == 0 marks the global (NoPE) ones
        no_rope = r.int_list("no_rope_layers") if "no_rope_layers" in r.data else []
        chunked = sum(1 for v in no_rope if v) if no_rope else layers - layers // 4
        fields.update(attention_chunk_size=chunk, chunked_layers=chunked)
    return fields


def _gpt_oss(r: Reader) -> dict[str, Any]:
    """gpt-oss: every layer MoE; layer_types alternates sliding/full attention; sinks ignored."""
    fields = _common(r)
    layers = fields["num_layers"]
    key = "experts_per_token" if "experts_per_token" in r.data else "num_experts_per_tok"
    experts_k = r.int(key)
    kinds = r.str_list("layer_types")
    window = r.int("sliding_window", None)
    sliding = sum(1 for k in kinds if k == "sliding_attention") if kinds else layers // 2
    fields.update(
        intermediate_size=0,
        num_experts=r.int("num_local_experts"),
        experts_per_token=experts_k,
        moe_intermediate_size=r.int("intermediate_size"),
        moe_layers=layers,
        dense_layers=0,
        sliding_window=window if window and sliding else None,
        sliding_layers=sliding if window else 0,
    )
    return fields


def _gemma(r: Reader) -> dict[str, Any]:
    """Gemma 1/2/3 text models: tied embeddings, gated GeLU MLP; Gemma 2/3 interleave local layers."""
    fields = _dense(r)
    fields["tie_word_embeddings"] = r.bool("tie_word_embeddings", True)
    kinds = r.str_list("layer_types")
    window = r.int("sliding_window", None)
    layers = fields["num_layers"]
    if window and kinds:
        sliding = sum(1 for k in kinds if k == "sliding_attention")
    elif window and "sliding_window_pattern" in r.data:  # Gemma 3: every Nth layer is global
        sliding = layers - layers // r.int("sliding_window_pattern")
    elif window and r.data.get("model_type") == "gemma2":  # Gemma 2: alternating
        sliding = (layers + 1) // 2
    else:
        sliding = 0
    fields.update(sliding_window=window if sliding else None, sliding_layers=sliding)
    return fields


# architectures[0] -> normaliser. Keep in step with docs/catalog.md.
NORMALISERS: dict[str, Callable[[Reader], dict[str, Any]]] = {
    "LlamaForCausalLM": _dense,
    "MistralForCausalLM": _dense,
    "Qwen2ForCausalLM": _dense,
    "Qwen3ForCausalLM": _dense,
    "MixtralForCausalLM": _mixtral,
    "Qwen2MoeForCausalLM": _qwen_moe,
    "Qwen3MoeForCausalLM": _qwen_moe,
    "DeepseekV2ForCausalLM": _deepseek,
    "DeepseekV3ForCausalLM": _deepseek,
    "Llama4ForConditionalGeneration": _llama4,
    "Llama4ForCausalLM": _llama4,
    "GptOssForCausalLM": _gpt_oss,
    "GemmaForCausalLM": _gemma,
    "Gemma2ForCausalLM": _gemma,
    "Gemma3ForCausalLM": _gemma,
    "Gemma3ForConditionalGeneration": _gemma,
}
NORMALISERS.update(
    {
        "GPT2LMHeadModel": _families.gpt2,
        "BloomForCausalLM": _families.bloom,
        "GPTNeoXForCausalLM": _families.gpt_neox,
        "FalconForCausalLM": _families.falcon,
        "RWForCausalLM": _families.falcon,
        "PhiForCausalLM": _families.phi,
        "Phi3ForCausalLM": _families.with_partial_rotary(_dense),
        "OlmoForCausalLM": _families.olmo(_dense),
        "Olmo2ForCausalLM": _families.olmo(_dense),
        "Olmo3ForCausalLM": _families.olmo(_dense),
        "OPTForCausalLM": _families.opt,
        "NemotronForCausalLM": _families.nemotron(_dense),
        "MiniMaxForCausalLM": _families.minimax(_mixtral),
        "MiniMaxM2ForCausalLM": _families.minimax(_mixtral),
    }
)
SUPPORTED_ARCHITECTURES: tuple[str, ...] = tuple(NORMALISERS)
# Multimodal wrappers keep the language model's keys under text_config.
TEXT_CONFIG = {"Llama4ForConditionalGeneration", "Gemma3ForConditionalGeneration"}
