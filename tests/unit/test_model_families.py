"""Architecture breadth: each family's config loads and its parameter count is within 2% of the
model card named in its template (source URLs in model_templates/*.yaml)."""

from __future__ import annotations

import pytest

from servesim.specs.common import SpecError
from servesim.specs.model import load_model, parse_hf_config

# model id -> parameters on the model card (billions); the card is the template's `source`
CARDS = {
    "bloom-176b": 176.247271424,  # huggingface.co/bigscience/bloom: 176,247,271,424
    "gpt-neox-20b": 20.55456768,  # huggingface.co/EleutherAI/gpt-neox-20b: 20,554,567,680
    "falcon-7b": 7.0,  # huggingface.co/tiiuae/falcon-7b: 7B
    "falcon-180b": 180.0,  # huggingface.co/tiiuae/falcon-180B: 180B
    "phi-2": 2.78,  # huggingface.co/microsoft/phi-2: model page "2.78B params" (text: "2.7 billion")
    "phi-3-mini": 3.8,  # huggingface.co/microsoft/Phi-3-mini-4k-instruct: 3.8B
    "olmo-7b": 6.88,  # allenai/OLMo-7B-hf; OLMo paper arXiv 2402.00838
    "opt-66b": 66.0,  # OPT paper arXiv 2205.01068 Table 1
    "nemotron-4-340b": 340.0,  # huggingface.co/nvidia/Nemotron-4-340B-Base
    "minimax-text-01": 456.0,  # huggingface.co/MiniMaxAI/MiniMax-Text-01: 456B total
    "gemma-3-4b": 3.884,  # Gemma 3 report arXiv 2503.19786 Table 1: 675M embedding + 3,209M
    "gpt2-xl": 1.5576112,  # huggingface.co/openai-community/gpt2-xl
    "gpt3-175b": 175.0,  # GPT-3 paper arXiv 2005.14165 Table 2.1
}


@pytest.mark.parametrize("name", sorted(CARDS))
def test_parameter_count_matches_model_card(name):
    m = load_model(name)
    assert abs(m.params_total / 1e9 / CARDS[name] - 1) < 0.02


def test_minimax_active_parameters():
    """Card: 45.9B activated per token, counted without the embedding and output tables."""
    m = load_model("minimax-text-01")
    active = m.params_active - m.embedding_params - m.lm_head_params
    assert abs(active / 45.9e9 - 1) < 0.02


def test_architecture_features_are_read():
    bloom, neox, falcon = (
        load_model("bloom-176b"),
        load_model("gpt-neox-20b"),
        load_model("falcon-7b"),
    )
    assert bloom.position == "alibi" and bloom.norm == "layernorm" and not bloom.gated_mlp
    assert bloom.attn_bias and bloom.mlp_bias and bloom.mlp_activation == "gelu"
    assert neox.parallel_block and neox.rotary_fraction == 0.25
    assert falcon.attention == "mqa" and falcon.num_kv_heads == 1 and falcon.norms_per_layer == 1
    nemo = load_model("nemotron-4-340b")
    assert nemo.mlp_activation == "relu2" and not nemo.gated_mlp and nemo.rotary_fraction == 0.5
    assert load_model("opt-66b").position == "learned"
    assert load_model("olmo-7b").norm_params == 0  # non-parametric LayerNorm


def test_gemma3_sparse_text_config_takes_class_defaults():
    m = load_model("gemma-3-4b")
    # absent from the shipped text_config: Gemma3TextConfig defaults
    assert (m.num_heads, m.num_kv_heads, m.head_dim, m.vocab_size) == (8, 4, 256, 262208)
    assert m.sliding_window == 1024 and m.sliding_layers == 34 - 34 // 6


def test_gpt2_bias_and_position_counts_by_hand():
    h, L, V, P = 64, 2, 100, 32
    m = parse_hf_config({"architectures": ["GPT2LMHeadModel"], "n_embd": h, "n_layer": L,
                         "n_head": 4, "vocab_size": V, "n_positions": P}, "t", name="t")  # fmt: skip
    per_layer = 4 * h * h + 8 * h * h + (3 * h + h) + (4 * h + h) + 2 * 2 * h  # W, biases, 2 LNs
    assert m.params_total == L * per_layer + V * h + P * h + 2 * h  # + final LN; tied head


def test_bad_family_value_names_the_key():
    with pytest.raises(SpecError, match="rotary_pct"):
        parse_hf_config({"architectures": ["GPTNeoXForCausalLM"], "hidden_size": 64,
                         "num_hidden_layers": 2, "num_attention_heads": 4,
                         "intermediate_size": 256, "vocab_size": 10, "rotary_pct": 2},
                        "t", name="t")  # fmt: skip


def test_serving_ops_follow_the_architecture():
    """ALiBi/learned positions have no rotary kernel; a parallel block reduces attention and MLP
    outputs in one all-reduce per layer; a single-norm block has one norm."""
    from servesim.cost.ops import model_ops
    from servesim.specs.config import Parallelism
    from servesim.specs.dtypes import DTypes

    par = Parallelism(tp=2, pp=1, ep=1, dp_attn=1)
    names = lambda m: [o.name for o in model_ops(load_model(m), DTypes(), par).ops]  # noqa: E731
    assert "rope" not in names("bloom-176b") and "rope" not in names("opt-66b")
    assert "rope" in names("llama-3.1-8b")
    count = lambda m: sum(o.count for o in model_ops(load_model(m), DTypes(), par).ops  # noqa: E731
                          if o.name == "tp_allreduce")  # fmt: skip
    assert count("gpt-neox-20b") == load_model("gpt-neox-20b").num_layers
    assert count("llama-3.1-8b") == 2 * load_model("llama-3.1-8b").num_layers
    one = Parallelism(tp=1, pp=1, ep=1, dp_attn=1)
    falcon7 = [o.name for o in model_ops(load_model("falcon-7b"), DTypes(), one).ops]
    assert "post_attn_norm" not in falcon7 and "post_attn_norm" in names("falcon-180b")
