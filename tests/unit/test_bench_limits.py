"""servesim.cost.trtllm_bench and its use in experiments/e2e_validation/score.py: the scheduler
limits trtllm-bench chose for the TensorRT-LLM perf-overview rows (its finetune_setting buckets,
its KV estimate, the quantisation gate), checked against hand computation."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from servesim.cost.trtllm_bench import finetune, trtllm_bench_limits
from servesim.specs.dtypes import DTypes
from servesim.specs.hardware import load_hardware
from servesim.specs.model import load_model

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def score():
    sys.path.insert(0, str(ROOT / "experiments" / "e2e_validation"))
    try:
        import score
    finally:
        sys.path.pop(0)
    return score


def _row(score, n):
    rows = score.read_rows(ROOT / "experiments" / "e2e_validation" / "measurements.csv")
    return next(r for r in rows if r["row"] == str(n))


@pytest.mark.parametrize(
    ("requests", "isl", "osl", "expected"),
    [
        # raw bs 990 -> 128 x ceil(990/128) = 1024; raw tokens 1980 -> the 2048 floor
        (990.0, 1000, 1000, (1024, 2048)),
        # raw bs 215 -> 32 x ceil(215/32) = 224; raw tokens 241.9 -> 2048
        (215.0, 1024, 8192, (224, 2048)),
        # capped at 4096 sequences; 8192 tokens is not < 8192: 1024 x 8
        (5000.0, 128, 128, (4096, 8192)),
        # raw bs 1320 -> 256 x 6 = 1536; raw tokens 1320 x 17 = 22440 -> 1024 x 22 = 22528
        (1320.0, 2048, 128, (1536, 22528)),
        # raw bs 40 -> the 64 floor; raw tokens 40 x 6 = 240 -> 2048
        (40.0, 5000, 1000, (64, 2048)),
        # raw bs 600 -> 640; raw tokens 600 x 9 = 5400 -> 512 x 11 = 5632
        (600.0, 8192, 1024, (640, 5632)),
    ],
)
def test_finetune_buckets_by_hand(requests, isl, osl, expected):
    assert finetune(requests, isl, osl) == expected


def test_llama_70b_fp8_on_one_h200_by_hand(score):
    # row 10: Llama-3.3-70B FP8 (FP8 KV), 1000/1000, one H200
    from servesim.cost.memory import weight_bytes

    gib = 2.0**30
    per_token = 2 * 80 * 8 * 128 * 1 / gib  # layers, KV heads, head dim, FP8
    engine = weight_bytes(load_model("llama-3.3-70b"), DTypes("fp8", "fp8", "fp8")) / gib
    free = load_hardware("h200-sxm").memory_bytes / gib - engine
    requests = free * 0.90 / (per_token * 2000)
    assert 200 < requests < 224  # -> 224 sequences (32-bucket), 2048 tokens
    assert score.bench_limits(_row(score, 10)) == {
        "max_num_seqs": 224,
        "max_num_batched_tokens": 2048,
    }


def test_untuned_quantisation_and_other_layouts(score):
    # GPT-OSS's MXFP4 is not in trtllm-bench's TUNED_QUANTS: BuildConfig's 2048 / 8192 (servesim's
    # TensorRT-LLM defaults), tokens raised to the prompt + 2048 where that is more
    assert score.bench_limits(_row(score, 38)) == {
        "max_num_seqs": 2048,
        "max_num_batched_tokens": 8192,
    }
    assert score.bench_limits(_row(score, 37))["max_num_batched_tokens"] == 8192 + 2048
    # attention-DP rows: per-rank limits that per-instance keys cannot express
    assert score.bench_limits(_row(score, 27)) == {}
    # other sources (NIM closed loop, vLLM on MI300X) ran other harnesses
    assert score.bench_limits(_row(score, 51)) == {}
    assert score.bench_limits(_row(score, 75)) == {}


def test_prompt_always_fits_the_token_budget(score):
    # chunked prefill off: trtllm-bench raises max_num_tokens to the prompt + max_batch_size
    row = dict(_row(score, 46))  # Llama-3.3-70B FP4 on B200, 8192/1024
    lim = score.bench_limits(row)
    assert lim["max_num_batched_tokens"] == 8192 + lim["max_num_seqs"]


def test_mla_latent_and_tp_sharding():
    # DeepSeek-V3 FP8 on 8 H200, 1000/1000: one 576-element latent per token and layer (FP8)
    model, hw = load_model("deepseek-v3"), load_hardware("h200-sxm")
    dt = DTypes("fp8", "fp8", "fp8")
    from servesim.cost.memory import weight_bytes

    per_token = model.num_layers * (512 + 64) * 1.0
    free = hw.memory_bytes * 8 - weight_bytes(model, dt)
    want = finetune(free * 0.90 / (per_token * 2000), 1000, 1000)
    assert trtllm_bench_limits(model, hw, dt, 1000, 1000, tp=8) == (
        want[0],
        max(want[1], 1000 + want[0]),
    )
    # an untuned checkpoint: BuildConfig's defaults whatever the memory
    assert trtllm_bench_limits(model, hw, dt, 1000, 1000, tp=8, tuned=False) == (2048, 8192)
