"""ModelSpec: a transformer normalised from HF config keys (dense, GQA, MLA, MoE, sliding window)."""

from __future__ import annotations

from dataclasses import dataclass


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
    shared_expert_intermediate_size: int = 0
    moe_layers: int = 0
    dense_layers: int = 0
    source: str = ""

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0
