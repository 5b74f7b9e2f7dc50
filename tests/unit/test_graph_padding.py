"""CUDA-graph padding (engine option ``+pad``): a decode-only step of n sequences runs the
captured graph of the next batch size up, so every kernel but attention sees the graph's rows.
Hand-computed sizes, the step built from unpadded steps, the hot path equal to the plan."""

from __future__ import annotations

import pytest

from servesim.cost.step import Aggregates, CostContext, _graph_pad, breakdown, step_cost
from servesim.cost.stepfast import bind_step_cost
from servesim.specs.common import SpecError
from servesim.specs.config import Parallelism
from servesim.specs.dtypes import DTypes
from servesim.specs.engines import describe, engine_kernels, graph_sizes, split_engine
from servesim.specs.hardware import load_hardware
from servesim.specs.model import load_model

TRT = (1, 2, 4, 8, 16, 32, 64, 128, 256, 384, 512, 1024, 2048, 4096, 8192)


def test_sizes_by_engine_flag_and_max_batch():
    assert graph_sizes("trtllm", frozenset(), 2048) == ()
    assert graph_sizes("trtllm", frozenset({"pad"}), None) == TRT
    # sizes above the pool's max_num_seqs are never run (TensorRT-LLM skips that padding)
    assert graph_sizes("trtllm", frozenset({"pad"}), 1792)[-1] == 1024
    assert graph_sizes("vllm", frozenset({"pad"}), None)[-3:] == (496, 504, 512)
    assert 12 in graph_sizes("sglang", frozenset({"pad"}), None)
    assert split_engine("trtllm@1.3+pad", "x", "engine") == ("trtllm", "1.3")
    with pytest.raises(SpecError, match="options after"):
        split_engine("trtllm+padding", "x", "engine")


def test_pad_rows_by_hand():
    pad = _graph_pad(TRT[:13], 1)  # captured up to 2048
    assert pad(1235) == 2048 and pad(1024) == 1024 and pad(300) == 384 and pad(3) == 4
    assert pad(2049) == 2049  # above the largest graph: eager, unpadded
    # attention DP over 4 ranks: 1001 sequences, 251 on the busiest rank -> 256 each
    assert _graph_pad(TRT, 4)(1001) == 1024


def _ctx(engine: str, max_batch: int | None = 2048) -> CostContext:
    hw = load_hardware("h200-sxm")
    dt = DTypes("fp4", "bf16", "bf16")
    eng = engine_kernels(engine, hw, 2.0, 0.5, 2.0, max_batch)
    return CostContext(load_model("gpt-oss-20b"), hw, Parallelism(), dt, 0.002, 1.0, eng)


def _decode(n: int, ctx_len: int = 1500) -> Aggregates:
    return Aggregates(decode_seqs=n, decode_ctx=n * ctx_len, sampled=n)


def _attention(ctx, agg) -> float:
    return sum(
        o.count * o.seconds for o in breakdown(ctx, "colocated", agg) if o.name.startswith("attn_")
    )


def test_padded_step_is_the_graph_rows_plus_the_real_attention():
    padded, plain = _ctx("trtllm+pad"), _ctx("trtllm")
    n, p = 1235, 2048
    got = step_cost(padded, "colocated", _decode(n)).seconds
    # the same engine unpadded at 2048 rows, with its attention swapped for n sequences'
    at_p = step_cost(plain, "colocated", _decode(p, 1500 * n // p)).seconds
    want = at_p - _attention(plain, _decode(p, 1500 * n // p)) + _attention(plain, _decode(n))
    assert got == pytest.approx(want, rel=1e-9)
    assert got > step_cost(plain, "colocated", _decode(n)).seconds * 1.2  # MoE-heavy: 1235 -> 2048
    # breakdown agrees with the step (sum of operators + overhead; the overlap scheduler hides
    # the 2 ms host time under the GPU step)
    ops = breakdown(padded, "colocated", _decode(n))
    assert sum(o.count * o.seconds for o in ops) == pytest.approx(got, rel=1e-9)


def test_steps_with_prefill_and_unpadded_engines_are_unchanged():
    padded, plain = _ctx("trtllm+pad"), _ctx("trtllm")
    mixed = Aggregates(1000, 1, 1000 * 1001 // 2, 0, 1235, 1235 * 1500, 1236)
    assert step_cost(padded, "colocated", mixed) == step_cost(plain, "colocated", mixed)
    exact = _decode(1024)  # a captured size: no dummy rows
    assert step_cost(padded, "colocated", exact) == step_cost(plain, "colocated", exact)
    # a pool capped below the next size runs eagerly, unpadded
    capped = _ctx("trtllm+pad", max_batch=1792)
    assert step_cost(capped, "colocated", _decode(1235)) == step_cost(
        plain, "colocated", _decode(1235)
    )


def test_hot_path_equals_the_plan_to_the_bit():
    ctx = _ctx("trtllm+pad")
    cost, decode = bind_step_cost(ctx, "colocated")
    for n, c in ((1, 900), (300, 2000), (1235, 1500), (2048, 1000), (3000, 1200)):
        agg = _decode(n, c)
        want = step_cost(ctx, "colocated", agg)
        assert cost(tuple(agg)) == want
        assert decode(n)(agg.decode_ctx) == want
    # mixed steps (eager, never padded) take the same path in both
    mixed = Aggregates(1000, 1, 1000 * 1001 // 2, 0, 1235, 1235 * 1500, 1236)
    assert cost(tuple(mixed)) == step_cost(ctx, "colocated", mixed)


def test_result_names_the_padding():
    assert describe(_ctx("trtllm+pad").engine)["graph_padding_max"] == 2048
    assert "graph_padding_max" not in describe(_ctx("trtllm").engine)
