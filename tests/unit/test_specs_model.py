"""Model templates and HF config.json normalisation: shapes, parameter counts, KV sizes, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from servesim.catalog import data_dir, model_ids
from servesim.specs import SpecError
from servesim.specs.model import SUPPORTED_ARCHITECTURES, ModelSpec, load_model

TEMPLATES = sorted(data_dir("model_templates").glob("*.yaml"))
REQUIRED = (
    "llama-2-7b", "llama-2-70b", "llama-3-8b", "llama-3-70b", "llama-3.1-8b", "llama-3.1-70b",
    "llama-3.3-70b", "llama-3.1-405b", "llama-4-scout", "llama-4-maverick", "mixtral-8x7b",
    "qwen3-32b", "qwen3-30b-a3b", "qwen3-235b-a22b", "deepseek-v3", "gpt-oss-20b", "gpt-oss-120b",
)  # fmt: skip


def _hf(name: str) -> dict:
    return yaml.safe_load(data_dir("model_templates").joinpath(f"{name}.yaml").read_text())[
        "hf_config"
    ]


def _write_config(tmp_path: Path, cfg: dict, folder: str = "My-Model") -> Path:
    path = tmp_path / folder / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cfg))
    return path


def test_catalog_models_required_ids_present():
    assert set(REQUIRED) <= set(model_ids())


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.stem)
def test_load_model_every_template_loads(path: Path):
    m = load_model(path.stem)
    assert isinstance(m, ModelSpec) and m.name == path.stem
    assert m.source.startswith("https://huggingface.co/")
    assert 0 < m.params_active <= m.params_total
    assert m.kv_elems_per_token_per_layer > 0
    if m.is_moe:
        assert m.moe_layers + m.dense_layers == m.num_layers


# (total, active) in billions from the model cards; None = the card gives no active count
CARDS = {
    "llama-2-7b": (6.74, None),
    "llama-2-70b": (68.98, None),  # the card's "70B"; the checkpoint holds 68.98B
    "llama-3.1-8b": (8.03, None),
    "llama-3.1-70b": (70.6, None),
    "llama-3.1-405b": (405.9, None),
    "mixtral-8x7b": (46.7, 12.9),
    "qwen3-32b": (32.8, None),
    "qwen3-30b-a3b": (30.5, 3.3),
    "qwen3-235b-a22b": (235.0, 22.0),
    "deepseek-v3": (671.0, 37.0),
    "llama-4-scout": (109.0, 17.0),  # card total includes the vision encoder (~1B), not modelled
    "llama-4-maverick": (400.0, 17.0),
}


@pytest.mark.parametrize("name", sorted(CARDS))
def test_params_total_and_active_match_model_cards(name: str):
    total, active = CARDS[name]
    m = load_model(name)
    assert m.params_total / 1e9 == pytest.approx(total, rel=0.02)
    if active is not None:
        assert m.params_active / 1e9 == pytest.approx(active, rel=0.02)
    else:
        assert m.params_active == m.params_total


@pytest.mark.parametrize(
    ("name", "total", "active"), [("gpt-oss-120b", 116.8, 5.13), ("gpt-oss-20b", 20.9, 3.61)]
)
def test_params_gpt_oss_match_card_active_without_embedding(name: str, total: float, active: float):
    """OpenAI's active counts leave out the embedding table (but count the unembedding)."""
    m = load_model(name)
    assert m.params_total / 1e9 == pytest.approx(total, rel=0.02)
    assert (m.params_active - m.embedding_params) / 1e9 == pytest.approx(active, rel=0.02)


def test_kv_bytes_llama31_8b_bf16_is_131072_per_token():
    m = load_model("llama-3.1-8b")
    assert m.kv_elems_per_token_per_layer == 2 * 8 * 128
    assert m.kv_elems_per_token_per_layer * m.num_layers * 2 == 131072


def test_kv_bytes_deepseek_v3_mla_latent_plus_rope():
    m = load_model("deepseek-r1")  # alias
    assert m.name == "deepseek-v3" and m.attention == "mla"
    assert m.kv_elems_per_token_per_layer * m.num_layers * 2 == 61 * (512 + 64) * 2
    assert (m.moe_layers, m.dense_layers, m.num_experts, m.num_shared_experts) == (58, 3, 256, 1)


def test_load_model_hf_config_json_path_matches_template(tmp_path: Path):
    path = _write_config(tmp_path, _hf("llama-3.1-8b"), folder="Llama-3.1-8B")
    m = load_model(str(path))
    ref = load_model("llama-3.1-8b")
    assert m.name == "llama-3.1-8b" and m.params_total == ref.params_total
    assert m.kv_elems_per_token_per_layer == ref.kv_elems_per_token_per_layer


def test_load_model_checkpoint_folder_reads_its_config_json(tmp_path: Path):
    path = _write_config(tmp_path, _hf("qwen3-32b"), folder="Qwen3-32B")
    m = load_model(str(path.parent) + "/")
    assert m.name == "qwen3-32b" and m.params_total == load_model("qwen3-32b").params_total


def test_load_model_hf_hub_id_alias_resolves():
    assert load_model("meta-llama/Llama-3.1-8B-Instruct") is load_model("llama-3.1-8b")


@pytest.mark.parametrize(
    "arch", ["MambaForCausalLM", "T5ForConditionalGeneration", "FancyNewForCausalLM"]
)
def test_load_model_unsupported_architecture_is_clear_error(tmp_path: Path, arch: str):
    path = _write_config(tmp_path, {"architectures": [arch], "hidden_size": 64})
    with pytest.raises(SpecError) as err:
        load_model(str(path))
    assert arch in str(err.value) and "supported" in str(err.value)
    assert "LlamaForCausalLM" in str(err.value)


def test_load_model_malformed_json_is_spec_error(tmp_path: Path):
    path = tmp_path / "config.json"
    path.write_text('{"architectures": ["LlamaForCausalLM"],')
    with pytest.raises(SpecError, match="malformed JSON at line"):
        load_model(str(path))


def test_load_model_malformed_template_yaml_is_spec_error(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nhf_config: {architectures: [LlamaForCausalLM\n")
    with pytest.raises(SpecError, match="malformed"):
        load_model(str(path))


def test_load_model_template_unknown_key_is_spec_error(tmp_path: Path):
    path = tmp_path / "x.yaml"
    path.write_text(
        yaml.safe_dump({"name": "x", "source": "s", "hf_cfg": {}, "hf_config": _hf("llama-3.1-8b")})
    )
    with pytest.raises(SpecError) as err:
        load_model(str(path))
    assert err.value.field == "hf_cfg"


def test_load_model_missing_required_key_names_it(tmp_path: Path):
    cfg = _hf("llama-3.1-8b")
    del cfg["intermediate_size"]
    with pytest.raises(SpecError) as err:
        load_model(str(_write_config(tmp_path, cfg)))
    assert err.value.field == "intermediate_size"


@pytest.mark.parametrize(
    ("key", "value"), [("num_key_value_heads", 7), ("num_hidden_layers", 0), ("hidden_size", "big")]
)
def test_load_model_bad_shapes_are_spec_errors(tmp_path: Path, key: str, value):
    cfg = _hf("llama-3.1-8b") | {key: value}
    with pytest.raises(SpecError) as err:
        load_model(str(_write_config(tmp_path, cfg)))
    assert err.value.field == key


def test_load_model_unknown_name_points_to_list():
    with pytest.raises(SpecError, match="servesim list models") as err:
        load_model("llama-3.1-8c")
    assert "llama-3.1-8b" in str(err.value)


def test_qwen3_moe_mlp_only_layers_and_sparse_step(tmp_path: Path):
    cfg = _hf("qwen3-30b-a3b") | {"mlp_only_layers": [0, 1], "decoder_sparse_step": 2}
    m = load_model(str(_write_config(tmp_path, cfg)))
    # MoE where (i+1) % 2 == 0 and i not in {0, 1}: i = 3, 5, ..., 47
    assert (m.moe_layers, m.dense_layers) == (23, 25)
    assert m.intermediate_size == 6144 and m.moe_intermediate_size == 768


def test_llama4_maverick_interleaves_moe_and_dense_layers():
    m = load_model("llama-4-maverick")
    assert (m.moe_layers, m.dense_layers) == (24, 24)
    assert m.intermediate_size == 16384 and m.moe_intermediate_size == 8192
    assert m.num_shared_experts == 1 and m.attention_chunk_size == 8192 and m.chunked_layers == 36


def test_gpt_oss_alternates_sliding_and_full_attention():
    m = load_model("gpt-oss-120b")
    assert m.sliding_window == 128 and m.sliding_layers == 18
    assert (m.num_experts, m.experts_per_token, m.moe_layers) == (128, 4, 36)


def test_mistral_sliding_window_applies_to_every_layer(tmp_path: Path):
    cfg = _hf("llama-3-8b") | {
        "architectures": ["MistralForCausalLM"],
        "sliding_window": 4096,
        "vocab_size": 32000,
    }
    m = load_model(str(_write_config(tmp_path, cfg)))
    assert m.sliding_window == 4096 and m.sliding_layers == m.num_layers


def test_qwen3_dense_without_sliding_window():
    m = load_model("qwen3-32b")
    assert m.sliding_window is None and m.head_dim == 128 and m.num_kv_heads == 8


def test_gemma2_ties_embeddings_and_alternates_local_layers(tmp_path: Path):
    cfg = {
        "architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2", "hidden_size": 2304,
        "intermediate_size": 9216, "num_attention_heads": 8, "num_key_value_heads": 4,
        "head_dim": 256, "num_hidden_layers": 26, "vocab_size": 256000, "sliding_window": 4096,
    }  # fmt: skip
    m = load_model(str(_write_config(tmp_path, cfg)))
    untied = load_model(
        str(_write_config(tmp_path, cfg | {"tie_word_embeddings": False}, "untied"))
    )
    assert m.tie_word_embeddings and not untied.tie_word_embeddings
    assert m.sliding_window == 4096 and m.sliding_layers == 13
    assert untied.params_total - m.params_total == 256000 * 2304


def test_mha_vs_gqa_detected():
    assert load_model("llama-2-7b").attention == "mha"
    assert load_model("llama-2-70b").attention == "gqa"


def test_supported_architectures_cover_required_families():
    needed = {"LlamaForCausalLM", "MixtralForCausalLM", "Qwen3MoeForCausalLM", "DeepseekV3ForCausalLM",
              "Llama4ForConditionalGeneration", "GptOssForCausalLM"}  # fmt: skip
    assert needed <= set(SUPPORTED_ARCHITECTURES)
