"""Operator formulas against hand-worked closed forms (FLOPs and bytes; time is tested in test_cost_step)."""

from __future__ import annotations

import numpy as np
import pytest

from servesim.cost.ops import expected_distinct_experts, model_ops, validate_parallelism
from servesim.cost.step import Aggregates, CostContext, breakdown
from servesim.specs.common import SpecError
from servesim.specs.config import Parallelism
from servesim.specs.dtypes import DTypes
from servesim.specs.hardware import load_hardware
from servesim.specs.model import load_model

BF16 = DTypes()
H100 = load_hardware("h100-sxm")


def _ctx(model: str, **par) -> CostContext:
    return CostContext(load_model(model), H100, Parallelism(**par), BF16, 0.0)


def _ops(ctx: CostContext, agg: Aggregates, role: str = "colocated") -> dict:
    return {op.name: op for op in breakdown(ctx, role, agg)}


def test_dense_gemm_flops_one_token_about_two_params():
    ctx = _ctx("llama-3.1-8b")
    m = ctx.model
    ops = breakdown(ctx, "colocated", Aggregates(decode_seqs=1, decode_ctx=1, sampled=1))
    gemm = sum(o.count * o.flops for o in ops if not o.name.startswith(("attn", "embedding")))
    # every weight except the embedding table is multiplied once per token: 2 FLOPs per parameter
    params = m.params_total - m.vocab_size * m.hidden_size
    assert gemm == pytest.approx(2 * params, rel=1e-3)


def test_gemm_flops_are_2mkn():
    ctx = _ctx("llama-3.1-8b", tp=2)
    ops = _ops(
        ctx, Aggregates(prefill_tokens=300, prefill_seqs=1, prefill_attn=300 * 301 // 2, sampled=1)
    )
    qkv_n = (32 // 2 + 2 * 8 // 2) * 128
    assert ops["qkv_proj"].flops == 2 * 300 * 4096 * qkv_n
    assert ops["mlp_down"].flops == 2 * 300 * (14336 // 2) * 4096
    assert ops["lm_head"].flops == 2 * 1 * 4096 * (128256 // 2)


def test_gemm_bytes_weights_once_activations_per_token():
    ctx = _ctx("llama-3.1-8b")
    ops = _ops(ctx, Aggregates(decode_seqs=7, decode_ctx=700, sampled=7))
    n, k = 4096, 32 * 128
    assert ops["o_proj"].bytes == 2 * (k * n + 7 * (k + n))


def test_prefill_attention_flops_causal_closed_form():
    ctx = _ctx("llama-3.1-8b")
    c, p = 512, 1024
    agg = Aggregates(
        prefill_tokens=c,
        prefill_seqs=1,
        prefill_attn=c * p + c * (c + 1) // 2,
        prefill_ctx=p,
        sampled=1,
    )
    op = _ops(ctx, agg)["attn_prefill"]
    # 4 * heads * head_dim * (c*p + c(c+1)/2): QK^T and PV over the causal (query, key) pairs
    assert op.flops == pytest.approx(4 * 32 * 128 * (c * p + c * (c + 1) / 2))
    kv_tok = 2 * 8 * 128 * 2
    assert op.bytes == pytest.approx((p + c) * kv_tok + c * 2 * 32 * 128 * 2)


def test_decode_attention_bytes_equal_kv_bytes_of_context():
    ctx = _ctx("llama-3.1-8b")
    seqs, total_ctx = 16, 16 * 3000
    op = _ops(ctx, Aggregates(decode_seqs=seqs, decode_ctx=total_ctx, sampled=seqs))["attn_decode"]
    kv_per_layer = 131072 / 32  # Llama-3.1-8B bf16: 131072 bytes per token over 32 layers
    q_o = seqs * 2 * 32 * 128 * 2
    assert op.bytes - q_o == pytest.approx(total_ctx * kv_per_layer)
    assert op.flops == pytest.approx(4 * total_ctx * 32 * 128)


def test_decode_attention_kv_heads_replicated_when_tp_exceeds_kv_heads():
    ctx = _ctx("llama-3.1-70b", tp=16)
    op = _ops(ctx, Aggregates(decode_seqs=1, decode_ctx=1000, sampled=1))["attn_decode"]
    # 8 KV heads over 16 ranks: each rank still reads one full KV head
    assert op.bytes - 2 * 4 * 128 * 2 == pytest.approx(1000 * 2 * 1 * 128 * 2)


def test_mla_decode_reads_compressed_latent():
    ctx = _ctx("deepseek-v3", tp=8, ep=8)
    ops = _ops(ctx, Aggregates(decode_seqs=4, decode_ctx=4000, sampled=4))
    op = ops["attn_decode"]
    q_o = 4 * (128 // 8) * (2 * 512 + 64) * 2
    assert op.bytes - q_o == pytest.approx(4000 * (512 + 64) * 2)
    assert "mla_q_absorb" in ops and ops["kv_b_proj"].flops == 0  # absorbed path in decode


def test_sliding_window_caps_decode_context():
    ctx = _ctx("gpt-oss-120b")
    m = ctx.model
    ops = _ops(ctx, Aggregates(decode_seqs=2, decode_ctx=2 * 10_000, sampled=2))
    full, local = ops["attn_decode"], ops["attn_decode_sliding"]
    assert full.count + local.count == m.num_layers
    assert local.flops == pytest.approx(full.flops * 2 * m.sliding_window / 20_000)


def test_expected_distinct_experts_closed_form():
    assert expected_distinct_experts(256, 8, 1) == pytest.approx(8)
    assert expected_distinct_experts(256, 8, 64) == pytest.approx(256 * (1 - (1 - 8 / 256) ** 64))
    assert expected_distinct_experts(256, 8, 100_000) == pytest.approx(256)
    assert expected_distinct_experts(256, 8, 0) == 0


def test_expected_distinct_experts_matches_sampling():
    rng = np.random.default_rng(np.random.SeedSequence(7))
    e, k, t = 64, 4, 20
    touched = [
        len({x for _ in range(t) for x in rng.choice(e, k, replace=False)}) for _ in range(400)
    ]
    assert np.mean(touched) == pytest.approx(expected_distinct_experts(e, k, t), rel=0.03)


def test_moe_expert_flops_scale_with_tokens_times_topk():
    ctx = _ctx("qwen3-30b-a3b")
    m = ctx.model
    ops = _ops(ctx, Aggregates(decode_seqs=10, decode_ctx=1000, sampled=10))
    assert ops["moe_experts_gate_up"].flops == pytest.approx(
        2 * 10 * 8 * m.hidden_size * 2 * m.moe_intermediate_size
    )
    touched = expected_distinct_experts(128, 8, 10)
    weights = touched * m.hidden_size * 2 * m.moe_intermediate_size * 2
    assert ops["moe_experts_gate_up"].bytes == pytest.approx(
        weights + 10 * 8 * (m.hidden_size + 2 * m.moe_intermediate_size) * 2
    )


def test_ep_all_to_all_bytes_per_device():
    ctx = _ctx("deepseek-v3", tp=8, ep=8)
    ops = _ops(ctx, Aggregates(decode_seqs=64, decode_ctx=64_000, sampled=64))
    # each of the 8 ranks holds its 64/8 tokens' hidden states (one copy each; the fan-out to
    # the top-8 experts' devices is comm.ep_alltoall's, tested in test_engine_kernels.py)
    assert ops["ep_dispatch"].bytes == pytest.approx(64 / 8 * 7168 * 2)
    assert ops["ep_dispatch"].count == ops["ep_combine"].count == 58


def test_tp_adds_two_allreduces_per_layer():
    ctx = _ctx("llama-3.1-70b", tp=4)
    op = _ops(ctx, Aggregates(decode_seqs=5, decode_ctx=500, sampled=5))["tp_allreduce"]
    assert op.count == 2 * 80
    assert op.bytes == 5 * 8192 * 2
    assert "tp_allreduce" not in _ops(
        _ctx("llama-3.1-70b"), Aggregates(decode_seqs=5, decode_ctx=500, sampled=5)
    )


def test_pp_adds_sends_between_stages():
    ctx = _ctx("llama-3.1-70b", tp=2, pp=4)
    op = _ops(ctx, Aggregates(decode_seqs=5, decode_ctx=500, sampled=5))["pp_send"]
    assert op.count == 3 and op.bytes == 2 * 5 * 8192 * 2


def test_dp_attention_splits_batch_over_groups():
    one = _ops(
        _ctx("deepseek-v3", tp=8, ep=8), Aggregates(decode_seqs=64, decode_ctx=64_000, sampled=64)
    )
    two = _ops(
        _ctx("deepseek-v3", tp=4, dp_attn=2, ep=8),
        Aggregates(decode_seqs=64, decode_ctx=64_000, sampled=64),
    )
    # half the sequences per group, twice the heads per device: same attention FLOPs per device
    assert two["attn_decode"].flops == pytest.approx(one["attn_decode"].flops)
    assert two["attn_decode"].bytes < 0.6 * one["attn_decode"].bytes + 1e6


def test_roles_split_operators_between_attention_and_ffn():
    ctx = _ctx("deepseek-v3", tp=8, ep=8)
    agg = Aggregates(decode_seqs=8, decode_ctx=8000, sampled=8)
    att, ffn = set(_ops(ctx, agg, "attention")), set(_ops(ctx, agg, "ffn"))
    assert {"qkv_proj", "attn_decode", "lm_head"} & att == {"attn_decode", "lm_head"}
    assert {"moe_experts_gate_up", "ep_dispatch", "shared_experts", "mlp_down"} <= ffn
    assert not (att - {"tp_allreduce"}) & ffn


def test_model_ops_built_once_per_spec():
    m = load_model("llama-3.1-8b")
    assert model_ops(m, BF16, Parallelism()) is model_ops(m, BF16, Parallelism())


@pytest.mark.parametrize(
    "model, par, field",
    [
        ("llama-3.1-8b", dict(tp=3), "parallelism.tp"),
        ("llama-3.1-70b", dict(tp=64 // 4 * 3), "parallelism.tp"),
        ("llama-3.1-8b", dict(ep=2), "parallelism.ep"),
        ("deepseek-v3", dict(tp=8, ep=3), "parallelism.ep"),
        ("deepseek-v3", dict(tp=2, ep=8), "parallelism.ep"),
        ("llama-3.1-8b", dict(pp=33), "parallelism.pp"),
        ("llama-3.1-8b", dict(tp=0), "parallelism.tp"),
    ],
)
def test_validate_parallelism_bad_split_raises_spec_error(model, par, field):
    with pytest.raises(SpecError) as err:
        validate_parallelism(load_model(model), Parallelism(**par), "cfg.yaml")
    assert err.value.field == field and "cfg.yaml" in str(err.value)


def test_validate_parallelism_vllm_splits_accepted():
    validate_parallelism(
        load_model("llama-3.1-70b"), Parallelism(tp=16), "x"
    )  # kv heads replicated
    validate_parallelism(load_model("deepseek-v3"), Parallelism(tp=8, dp_attn=4, ep=32), "x")
    assert (
        model_ops(load_model("deepseek-v3"), BF16, Parallelism(tp=8, dp_attn=4, ep=32)).devices
        == 32
    )


def test_chunked_local_attention_layers_capped_at_chunk():
    ctx = _ctx("llama-4-scout", tp=8)
    m = ctx.model
    ops = _ops(ctx, Aggregates(decode_seqs=1, decode_ctx=100_000, sampled=1))
    assert ops["attn_decode_chunked"].count == m.chunked_layers
    assert ops["attn_decode"].count == m.num_layers - m.chunked_layers
    assert ops["attn_decode_chunked"].flops == pytest.approx(
        ops["attn_decode"].flops * m.attention_chunk_size / 100_000
    )


def test_fp8_activations_keep_residual_stream_16bit():
    # fp8 activations are GEMM inputs only: the all-reduce, norms and the EP combine move the
    # bf16 hidden states (vLLM, SGLang, TensorRT-LLM); the EP dispatch may be fp8 (DeepEP)
    fp8 = DTypes("fp8", "fp8", "fp8")
    ctx = CostContext(load_model("deepseek-v3"), H100, Parallelism(tp=8, ep=8), fp8, 0.0)
    h = ctx.model.hidden_size
    ops = _ops(ctx, Aggregates(decode_seqs=16, decode_ctx=16 * 1000, sampled=16))
    assert ops["tp_allreduce"].bytes == 16 * h * 2
    assert ops["input_norm"].bytes == 16 * 4 * h * 2
    assert ops["ep_dispatch"].bytes == 16 * h * 1 / 8
    assert ops["ep_combine"].bytes == 16 * h * 2 / 8
