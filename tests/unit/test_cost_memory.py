"""Weights, KV bytes per token, activation reserve, KV capacity and fit checks."""

from __future__ import annotations

import pytest

from servesim.cost import memory
from servesim.cost.step import CostContext
from servesim.specs.common import SpecError
from servesim.specs.config import Parallelism
from servesim.specs.dtypes import DTypes
from servesim.specs.hardware import load_hardware
from servesim.specs.model import load_model

BF16, FP8 = DTypes(), DTypes("fp8", "fp8", "fp8")
H100 = load_hardware("h100-sxm")


def _ctx(model: str, dtypes=BF16, **par) -> CostContext:
    return CostContext(load_model(model), H100, Parallelism(**par), dtypes, 0.0)


def test_kv_bytes_per_token_llama_3_1_8b_bf16():
    # 32 layers x 2 (K, V) x 8 KV heads x 128 head dim x 2 bytes
    assert memory.kv_bytes_per_token(load_model("llama-3.1-8b"), "bf16") == 131072


def test_kv_bytes_per_token_deepseek_v3_mla_latent():
    assert memory.kv_bytes_per_token(load_model("deepseek-v3"), "bf16") == 61 * (512 + 64) * 2
    assert memory.kv_bytes_per_token(load_model("deepseek-v3"), FP8) == 61 * (512 + 64)


def test_kv_bytes_per_token_per_device_tp_shards_and_replicates():
    m = load_model("llama-3.1-70b")  # 80 layers, 8 KV heads
    assert (
        memory.kv_bytes_per_token_per_device(m, "bf16", Parallelism(tp=4)) == 80 * 2 * 2 * 128 * 2
    )
    # tp=16 > 8 KV heads: each rank holds one (replicated) head
    assert (
        memory.kv_bytes_per_token_per_device(m, "bf16", Parallelism(tp=16)) == 80 * 2 * 1 * 128 * 2
    )
    assert (
        memory.kv_bytes_per_token_per_device(m, "bf16", Parallelism(tp=8, pp=2))
        == 40 * 2 * 1 * 128 * 2
    )
    # the MLA latent is replicated on every TP rank
    ds = load_model("deepseek-v3")
    assert memory.kv_bytes_per_token_per_device(ds, "bf16", Parallelism(tp=8, ep=8)) == 61 * 576 * 2


def test_param_counts_agree_with_model_spec():
    for name in (
        "llama-3.1-8b",
        "llama-3.1-70b",
        "deepseek-v3",
        "qwen3-30b-a3b",
        "mixtral-8x7b",
        "gpt-oss-120b",
    ):
        m = load_model(name)
        total, active = memory.param_counts(m)
        assert total == pytest.approx(m.params_total, rel=1e-4), name
        assert active == pytest.approx(m.params_active, rel=1e-4), name


def test_param_counts_published_sizes():
    assert memory.param_counts(load_model("llama-3.1-8b"))[0] == pytest.approx(8.03e9, rel=0.01)
    total, active = memory.param_counts(load_model("deepseek-v3"))
    assert (total, active) == (pytest.approx(671e9, rel=0.02), pytest.approx(37e9, rel=0.03))


def test_weight_bytes_per_device_dense_bf16_and_tp():
    m = load_model("llama-3.1-8b")
    total = memory.param_counts(m)[0] * 2
    assert memory.weight_bytes_per_device(m, BF16, Parallelism()) == pytest.approx(total, rel=1e-4)
    assert memory.weight_bytes_per_device(m, BF16, Parallelism(tp=2)) == pytest.approx(
        total / 2, rel=1e-3
    )


def test_weight_bytes_fp8_keeps_embedding_and_lm_head_16_bit():
    m = load_model("llama-3.1-8b")
    edges = 2 * m.vocab_size * m.hidden_size
    body = memory.param_counts(m)[0] - edges
    assert memory.weight_bytes_per_device(m, FP8, Parallelism()) == pytest.approx(
        body + 2 * edges, rel=1e-4
    )


def test_weight_bytes_per_device_roles_split_the_model():
    m, par = load_model("deepseek-v3"), Parallelism(tp=8, ep=8)
    col = memory.weight_bytes_per_device(m, FP8, par)
    att = memory.weight_bytes_per_device(m, FP8, par, "attention")
    ffn = memory.weight_bytes_per_device(m, FP8, par, "ffn")
    assert att + ffn == pytest.approx(col) and ffn > 5 * att


def test_check_fit_llama_70b_bf16_one_h100_does_not_fit():
    with pytest.raises(SpecError) as err:
        memory.check_fit(_ctx("llama-3.1-70b"), 0.9, "colocated", "run.yaml")
    msg = str(err.value)
    assert msg.startswith("run.yaml") and "does not fit" in msg and "llama-3.1-70b" in msg
    assert "bf16" in msg and "h100-sxm" in msg and "tp=1" in msg and "85.52 GB x 0.9" in msg


def test_check_fit_llama_70b_bf16_four_h100_fits():
    ctx = _ctx("llama-3.1-70b", tp=4)
    memory.check_fit(ctx, 0.9, "colocated", "run.yaml")
    assert memory.kv_capacity_tokens(ctx, 0.9, "colocated") > 100_000


def test_kv_capacity_tokens_closed_form():
    ctx = _ctx("llama-3.1-8b")
    m = ctx.model
    free = ctx.hardware.memory_bytes * 0.9 - memory.weight_bytes_per_device(m, BF16, Parallelism())
    free -= memory.activation_reserve_bytes(m, BF16, Parallelism(), 8192)
    assert memory.kv_capacity_tokens(ctx, 0.9, "colocated") == int(free // 131072)


def test_kv_capacity_tokens_monotone_in_utilisation_and_zero_for_ffn():
    ctx = _ctx("llama-3.1-8b")
    caps = [memory.kv_capacity_tokens(ctx, u, "colocated") for u in (0.3, 0.6, 0.9)]
    assert caps == sorted(caps) and caps[0] > 0
    assert memory.kv_capacity_tokens(ctx, 0.9, "ffn") == 0
    assert memory.kv_capacity_tokens(ctx, 0.9, "attention") > caps[-1]


def test_kv_capacity_tokens_dp_attention_multiplies_groups():
    one = memory.kv_capacity_tokens(_ctx("deepseek-v3", FP8, tp=8, ep=8), 0.9, "colocated")
    two = memory.kv_capacity_tokens(
        _ctx("deepseek-v3", FP8, tp=8, dp_attn=2, ep=16), 0.9, "colocated"
    )
    assert one == 0  # 671B in fp8 does not fit 8 x 85.5 GB
    assert two > 0


def test_activation_reserve_grows_with_batched_tokens():
    m = load_model("llama-3.1-8b")
    small = memory.activation_reserve_bytes(m, BF16, Parallelism(), 2048)
    big = memory.activation_reserve_bytes(m, BF16, Parallelism(), 16384)
    assert 0 < small < big < 10e9


def test_activation_reserve_fp8_activations_keep_16bit_hidden_states():
    # fp8 activations quantise GEMM inputs only; the residual stream and GEMM outputs that vLLM's
    # profiling run holds stay bf16, so the reserve is that of bf16 activations
    m, par = load_model("llama-3.1-70b"), Parallelism(tp=4)
    fp8 = memory.activation_reserve_bytes(m, DTypes("fp8", "fp8", "fp8"), par, 8192)
    assert fp8 == memory.activation_reserve_bytes(m, DTypes(), par, 8192)
