"""Hugging Face names: repo ids through a (fabricated) local HF cache, aliases, folders, and
quantization_config applied to the run's formats. No network: the cache is a temp folder."""

from __future__ import annotations

import json

import pytest

from servesim.specs import SpecError
from servesim.specs.config import load_config
from servesim.specs.hf import name_candidates, quantization_dtypes
from servesim.specs.model import load_model

# meta-llama/Llama-3.1-70B config.json (model card https://huggingface.co/meta-llama/Llama-3.1-70B)
LLAMA_70B = {
    "architectures": ["LlamaForCausalLM"], "hidden_size": 8192, "intermediate_size": 28672,
    "max_position_embeddings": 131072, "model_type": "llama", "num_attention_heads": 64,
    "num_hidden_layers": 80, "num_key_value_heads": 8, "vocab_size": 128256,
    "tie_word_embeddings": False, "rms_norm_eps": 1e-5,
}  # fmt: skip
# mistralai/Mistral-7B-v0.3 config.json (https://huggingface.co/mistralai/Mistral-7B-v0.3)
MISTRAL_7B = {
    "architectures": ["MistralForCausalLM"], "hidden_size": 4096, "intermediate_size": 14336,
    "max_position_embeddings": 32768, "model_type": "mistral", "num_attention_heads": 32,
    "num_hidden_layers": 32, "num_key_value_heads": 8, "vocab_size": 32768,
    "tie_word_embeddings": False, "rms_norm_eps": 1e-5, "sliding_window": None,
}  # fmt: skip
# quantization_config blocks as published in these checkpoints' config.json
AWQ = {"quant_method": "awq", "bits": 4, "group_size": 128, "version": "gemm", "zero_point": True}
GPTQ = {"quant_method": "gptq", "bits": 8, "group_size": 128, "desc_act": True, "sym": True}
FP8 = {"quant_method": "fp8", "activation_scheme": "dynamic"}
COMPRESSED_W8A8_KV8 = {
    "quant_method": "compressed-tensors",
    "config_groups": {"group_0": {
        "weights": {"num_bits": 8, "type": "float", "strategy": "channel"},
        "input_activations": {"num_bits": 8, "type": "float", "dynamic": True},
        "targets": ["Linear"]}},
    "kv_cache_scheme": {"num_bits": 8, "type": "float", "strategy": "tensor"},
}  # fmt: skip
COMPRESSED_W4A16 = {
    "quant_method": "compressed-tensors",
    "config_groups": {"group_0": {"weights": {"num_bits": 4, "type": "int"},
                                  "input_activations": None, "targets": ["Linear"]}},
}  # fmt: skip
MXFP4 = {"quant_method": "mxfp4", "modules_to_not_convert": ["model.layers.*.self_attn"]}


@pytest.fixture()
def hub(tmp_path, monkeypatch):
    """An HF hub cache in tmp_path; add(repo, config) stores a snapshot like the hub does."""
    root = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(root))

    def add(repo: str, config: dict, rev: str = "0123abcd") -> None:
        base = root / ("models--" + repo.replace("/", "--"))
        snap = base / "snapshots" / rev
        snap.mkdir(parents=True)
        (snap / "config.json").write_text(json.dumps(config))
        (base / "refs").mkdir()
        (base / "refs" / "main").write_text(rev)

    return add


def test_repo_id_in_local_cache_loads_with_repo_name(hub):
    hub("mistralai/Mistral-7B-v0.3", MISTRAL_7B)
    m = load_model("mistralai/Mistral-7B-v0.3")
    assert m.name == "mistralai/mistral-7b-v0.3" and m.num_layers == 32
    # 7.25B parameters (model card: 7.3B)
    assert 7.1e9 < m.params_total < 7.4e9


def test_repo_id_missing_from_cache_says_how_to_get_it(hub):
    with pytest.raises(SpecError, match="huggingface-cli download mistralai/Mistral-7B-v0.3"):
        load_model("mistralai/Mistral-7B-v0.3")


def test_meta_prefixed_and_instruct_names_resolve_to_the_catalog(hub):
    assert load_model("meta-llama/Meta-Llama-3.1-8B-Instruct").name == "llama-3.1-8b"
    assert load_model("meta-llama/Meta-Llama-3.1-70B-Instruct").name == "llama-3.1-70b"
    assert "Llama-3.1-8B" in name_candidates("meta-llama/Meta-Llama-3.1-8B-Instruct")


def test_folder_with_config_json_loads(tmp_path):
    d = tmp_path / "Mistral-7B-v0.3"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(MISTRAL_7B))
    assert load_model(str(d)).name == "mistral-7b-v0.3"


@pytest.mark.parametrize(
    ("q", "want"),
    [
        (AWQ, ("int4", "bf16", "bf16")),
        (GPTQ, ("int8", "bf16", "bf16")),
        (FP8, ("fp8", "fp8", "bf16")),
        (COMPRESSED_W8A8_KV8, ("fp8", "fp8", "fp8")),
        (COMPRESSED_W4A16, ("int4", "bf16", "bf16")),
        (MXFP4, ("fp4", "bf16", "bf16")),
    ],
)
def test_quantization_config_maps_to_formats(q, want):
    d = quantization_dtypes(q)
    assert (d["weights"], d["activations"], d["kv_cache"]) == want


def test_unknown_quant_method_is_a_clear_error():
    with pytest.raises(SpecError, match="quant_method"):
        quantization_dtypes({"quant_method": "hqq"})


def _config(model, dtype=None):
    cfg = {
        "model": model,
        "deployment": {"pools": [{"role": "colocated", "hardware": "h100-sxm"}]},
        "workload": {
            "clients": {"concurrency": 1},
            "num_requests": 2,
            "lengths": {"input": 256, "output": 8},
        },
    }
    if dtype is not None:
        cfg["dtype"] = dtype
    return cfg


def test_awq_70b_fits_one_h100_where_bf16_does_not(hub):
    import servesim

    hub("hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4",
        {**LLAMA_70B, "quantization_config": AWQ})  # fmt: skip
    name = "hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4"
    cfg = load_config(_config(name))
    assert (cfg.dtypes.weights, cfg.dtypes.activations) == ("int4", "bf16")
    res = servesim.simulate(_config(name))
    assert res.summary["completed"] == 2
    with pytest.raises(SpecError):  # the same shapes in bf16 (141 GB) do not fit 80 GB
        servesim.simulate(_config("llama-3.1-70b"))
    # a dtype mapping the user writes still wins
    mine = load_config(_config(name, {"weights": "fp8"}))
    assert mine.dtypes.weights == "fp8"


def test_fp8_kv_scheme_reaches_the_kv_cache(hub):
    hub("org/llama-70b-w8a8-kv8", {**LLAMA_70B, "quantization_config": COMPRESSED_W8A8_KV8})
    d = load_config(_config("org/llama-70b-w8a8-kv8")).dtypes
    assert (d.weights, d.activations, d.kv_cache) == ("fp8", "fp8", "fp8")
