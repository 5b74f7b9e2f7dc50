"""ModelSpec: a transformer normalised from HF config keys (dense, GQA, MLA, MoE, sliding window).

``load_model`` reads a catalog template (model_templates/NAME.yaml: name, display_name, source,
aliases, hf_config) or any HF ``config.json``; one normaliser per supported architecture family
turns the HF keys into ModelSpec fields. Parameter counts are derived, not stored, so they always
agree with the shapes the cost model uses.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from servesim.specs import model_families as _families
from servesim.specs.common import (
    SpecError,
    check_keys,
    get_str,
    load_json,
    load_yaml,
    require_mapping,
)
from servesim.specs.hardware import resolve_catalog
from servesim.specs.hf_normalise import (  # SUPPORTED_ARCHITECTURES re-exported
    NORMALISERS,
    SUPPORTED_ARCHITECTURES,
    TEXT_CONFIG,
    Reader,
)


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    architecture: str
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int  # dense MLP width (dense layers); 0 if every layer is MoE
    vocab_size: int
    tie_word_embeddings: bool = False
    gated_mlp: bool = True  # SwiGLU-style gate + up
    max_position_embeddings: int = 0
    attention: str = "gqa"  # mha | gqa | mla
    sliding_window: int | None = None
    sliding_layers: int = 0  # how many layers use the window
    # MLA (DeepSeek-V2/V3)
    q_lora_rank: int | None = None
    kv_lora_rank: int = 0
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0
    # MoE
    num_experts: int = 0
    experts_per_token: int = 0
    num_shared_experts: int = 0
    moe_intermediate_size: int = 0
    shared_expert_intermediate_size: int = 0  # width of ONE shared expert
    moe_layers: int = 0
    dense_layers: int = 0
    source: str = ""
    display_name: str = ""
    aliases: tuple[str, ...] = ()
    # Llama 4 chunked local attention: `chunked_layers` layers attend only within
    # aligned chunks of `attention_chunk_size` tokens (the rest attend to everything).
    attention_chunk_size: int | None = None
    chunked_layers: int = 0
    # Architecture breadth (older and non-Llama families; servesim/specs/model_families.py). The
    # defaults describe a Llama-style block, so models loaded before these existed are unchanged.
    mlp_activation: str = "silu"  # silu | gelu | relu | relu2 (squared ReLU)
    norm: str = "rmsnorm"  # rmsnorm | layernorm
    norm_params_scale: int = 1  # weights per norm element: 1, 2 with a bias, 0 non-parametric
    norms_per_layer: int = 2  # pre-attention and pre-MLP norms; 1 for single-norm parallel blocks
    position: str = "rope"  # rope | alibi | learned (learned: a max_position_embeddings x h table)
    rotary_fraction: float = 1.0  # fraction of each head's dims rotated (partial rotary)
    parallel_block: bool = False  # attention and MLP read the same input (GPT-J/NeoX, Falcon, Phi)
    attn_bias: bool = False  # QKV and output projections carry biases
    mlp_bias: bool = False  # MLP projections carry biases
    lm_head_bias: bool = False
    extra_params: int = 0  # weights outside the blocks (embedding LayerNorm, projections), counted
    # DeepSeek-V3 multi-token prediction modules (training only; not in params_total, as the card)
    mtp_layers: int = 0

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    # ---- parameter counts (weights only; biases and per-head norms, < 0.1%, are ignored)

    @property
    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    @property
    def lm_head_params(self) -> int:
        """The output projection; with tied embeddings it shares the embedding's storage."""
        return self.vocab_size * self.hidden_size

    @property
    def attention_params_per_layer(self) -> int:
        h = self.hidden_size
        if self.attention == "mla":
            qk_dim = self.qk_nope_head_dim + self.qk_rope_head_dim
            if self.q_lora_rank:
                q = (
                    h * self.q_lora_rank
                    + self.q_lora_rank
                    + self.q_lora_rank * self.num_heads * qk_dim
                )
            else:
                q = h * self.num_heads * qk_dim
            kv_a = h * (self.kv_lora_rank + self.qk_rope_head_dim) + self.kv_lora_rank
            kv_b = self.kv_lora_rank * self.num_heads * (self.qk_nope_head_dim + self.v_head_dim)
            o = self.num_heads * self.v_head_dim * h
            return q + kv_a + kv_b + o
        q_o = 2 * h * self.num_heads * self.head_dim
        kv = 2 * h * self.num_kv_heads * self.head_dim
        return q_o + kv

    def _mlp(self, width: int) -> int:
        return (3 if self.gated_mlp else 2) * self.hidden_size * width

    @property
    def mlp_params_per_layer(self) -> int:
        """One dense-MLP layer."""
        return self._mlp(self.intermediate_size)

    @property
    def expert_params(self) -> int:
        """One routed expert."""
        return self._mlp(self.moe_intermediate_size)

    @property
    def shared_expert_params_per_layer(self) -> int:
        return self.num_shared_experts * self._mlp(self.shared_expert_intermediate_size)

    @property
    def router_params_per_layer(self) -> int:
        return self.hidden_size * self.num_experts

    @property
    def moe_params_per_layer(self) -> int:
        """One MoE layer, all experts: router + routed experts + shared experts."""
        return (
            self.router_params_per_layer
            + self.num_experts * self.expert_params
            + self.shared_expert_params_per_layer
        )

    @property
    def moe_active_params_per_layer(self) -> int:
        """One MoE layer, per token: router + top-k experts + shared experts."""
        return (
            self.router_params_per_layer
            + self.experts_per_token * self.expert_params
            + self.shared_expert_params_per_layer
        )

    @property
    def norm_params(self) -> int:
        """Norm weights: per layer, plus the final norm (LayerNorm with bias: 2 vectors each)."""
        per = self.hidden_size * self.norm_params_scale
        return (self.norms_per_layer * self.num_layers + 1) * per

    @property
    def bias_params(self) -> int:
        """Bias vectors of the projections (only families that declare them; 0 for Llama-style)."""
        h, per = self.hidden_size, 0
        if self.attn_bias:
            q = self.num_heads * self.head_dim
            per += q + 2 * self.num_kv_heads * self.head_dim + h
        if self.mlp_bias and self.intermediate_size:
            per += (2 if self.gated_mlp else 1) * self.intermediate_size + h
        out = per * self.num_layers + (self.vocab_size if self.lm_head_bias else 0)
        return out + self.extra_params

    @property
    def position_params(self) -> int:
        return self.max_position_embeddings * self.hidden_size if self.position == "learned" else 0

    def _body(self, moe_per_layer: int) -> int:
        dense_layers = self.num_layers - self.moe_layers
        return (
            self.num_layers * self.attention_params_per_layer
            + dense_layers * self.mlp_params_per_layer
            + self.moe_layers * moe_per_layer
            + self.norm_params
            + self.bias_params
            + self.position_params
        )

    @property
    def params_total(self) -> int:
        """All weights; tied embeddings are counted once."""
        head = 0 if self.tie_word_embeddings else self.lm_head_params
        return self._body(self.moe_params_per_layer) + self.embedding_params + head

    @property
    def params_active(self) -> int:
        """Weights one token touches: embedding table counted once, the LM head too if untied.

        (Some model cards, e.g. gpt-oss, leave the embedding out of their active count.)
        """
        head = 0 if self.tie_word_embeddings else self.lm_head_params
        return self._body(self.moe_active_params_per_layer) + self.embedding_params + head

    @property
    def kv_elems_per_token_per_layer(self) -> int:
        """KV-cache elements per token per layer: GQA 2*kv_heads*head_dim; MLA the latent + rope key."""
        if self.attention == "mla":
            return self.kv_lora_rank + self.qk_rope_head_dim
        return 2 * self.num_kv_heads * self.head_dim

    @property
    def q_head_dim(self) -> int:
        """Query/key width per head used by the attention scores (MLA: nope + rope)."""
        if self.attention == "mla":
            return self.qk_nope_head_dim + self.qk_rope_head_dim
        return self.head_dim


# ------------------------------------------------------------------------------------- loading

_TEMPLATE_KEYS = ("name", "display_name", "source", "aliases", "hf_config", "notes")


def load_model(name_or_path: str | Path, where: str | None = None) -> ModelSpec:
    """A model by catalog id (``llama-3.1-8b``), alias, template YAML or HF ``config.json`` path.

    Unsupported architectures and inconsistent shapes raise SpecError. Loaded once per file
    (memoised by resolved path and modification time).
    """
    try:
        path = resolve_catalog("model", name_or_path, where)
    except SpecError:  # an HF repo id or alias: the local HF cache, then its spellings
        from servesim.specs.hf import resolve_model_file

        path = resolve_model_file(name_or_path, where)
    return _load_cached(str(path), path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=128)
def _load_cached(path: str, mtime_ns: int) -> ModelSpec:
    p = Path(path)
    if p.suffix == ".json":
        return parse_hf_config(_load_json(p), path, name=_name_from_path(p), source=path)
    data = load_yaml(p)
    if data is None:
        raise SpecError(path, "", "<empty>", "the model file is empty")
    data = require_mapping(data, path, "")
    if "hf_config" not in data and "architectures" in data:  # an HF config written as YAML
        return parse_hf_config(data, path, name=p.stem, source=path)
    check_keys(data, _TEMPLATE_KEYS, path, "")
    hf = require_mapping(data.get("hf_config"), path, "hf_config")
    aliases = data.get("aliases") or []
    if not isinstance(aliases, list) or not all(isinstance(a, str) and a for a in aliases):
        raise SpecError(path, "aliases", aliases, "must be a list of names")
    return parse_hf_config(
        hf,
        path,
        name=get_str(data, "name", path),
        source=get_str(data, "source", path),
        display_name=get_str(data, "display_name", path, default=""),
        aliases=tuple(aliases),
        prefix="hf_config",
    )


def _load_json(path: Path) -> Mapping[str, Any]:
    # the reader's limits (depth, duplicate keys) apply to JSON as to YAML
    return require_mapping(load_json(path), str(path), "")


def _name_from_path(path: Path) -> str:
    """`.../Llama-3.1-8B/config.json` -> `llama-3.1-8b`; a file not named config.json -> its stem."""
    if path.parent.parent.name == "snapshots":  # HF cache: models--ORG--NAME/snapshots/REV/
        return path.parent.parent.parent.name.removeprefix("models--").replace("--", "/").lower()
    stem = path.parent.name if path.stem == "config" and path.parent.name else path.stem
    return stem.lower()


def parse_hf_config(
    hf: Mapping[str, Any],
    where: str,
    *,
    name: str,
    source: str = "",
    display_name: str = "",
    aliases: tuple[str, ...] = (),
    prefix: str = "",
) -> ModelSpec:
    """Normalise one HF config mapping into a ModelSpec (unsupported architectures are errors)."""
    archs = hf.get("architectures")
    field = f"{prefix}.architectures" if prefix else "architectures"
    if not isinstance(archs, list) or not archs or not isinstance(archs[0], str):
        raise SpecError(where, field, archs, "required: a list with the HF architecture name")
    arch = archs[0]
    normaliser = NORMALISERS.get(arch)
    if normaliser is None:
        raise SpecError(
            where, field, arch,
            "unsupported architecture (decoder-only transformers only); supported: "
            + ", ".join(SUPPORTED_ARCHITECTURES),
        )  # fmt: skip
    data, inner = hf, prefix
    if arch in TEXT_CONFIG and isinstance(hf.get("text_config"), Mapping):
        # a sparse text_config lists only what differs from the config class's defaults
        data = {**_families.TEXT_CONFIG_DEFAULTS.get(arch, {}), **hf["text_config"]}
        inner = f"{prefix}.text_config" if prefix else "text_config"
    fields = normaliser(Reader(data, where, inner))
    if "tie_word_embeddings" in hf and data is not hf:  # the wrapper's flag wins
        fields["tie_word_embeddings"] = Reader(hf, where, prefix).bool("tie_word_embeddings", False)
    spec = ModelSpec(
        name=name,
        architecture=arch,
        source=source,
        display_name=display_name,
        aliases=aliases,
        **fields,
    )
    _validate(spec, where, inner)
    return spec


def _validate(m: ModelSpec, where: str, prefix: str) -> None:
    def fail(key: str, value: Any, allowed: str) -> None:
        raise SpecError(where, f"{prefix}.{key}" if prefix else key, value, allowed)

    if m.attention != "mla" and m.num_heads % m.num_kv_heads:
        fail(
            "num_key_value_heads",
            m.num_kv_heads,
            f"must divide num_attention_heads ({m.num_heads})",
        )
    if m.is_moe and not 0 < m.experts_per_token <= m.num_experts:
        fail(
            "num_experts_per_tok",
            m.experts_per_token,
            f"must be between 1 and the number of experts ({m.num_experts})",
        )
    if m.moe_layers + m.dense_layers != m.num_layers and m.is_moe:
        fail("num_hidden_layers", m.num_layers, "MoE and dense layer counts do not add up")
    if m.dense_layers and m.is_moe and m.intermediate_size <= 0:
        fail(
            "intermediate_size",
            m.intermediate_size,
            "dense layers need a positive intermediate_size",
        )
    if m.sliding_window is not None and m.sliding_window < 1:
        fail("sliding_window", m.sliding_window, "must be a positive whole number")
