"""Hypothesis: a step never gets cheaper when its batch grows, and its parts always add up."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servesim.cost.step import Aggregates, CostContext, breakdown, step_cost
from servesim.specs.config import Parallelism
from servesim.specs.dtypes import DTypes
from servesim.specs.hardware import load_hardware
from servesim.specs.model import load_model

# Tile/wave quantisation of the kernel models (roofline.py) is switched off here: it assumes equal
# blocks, so one more short sequence can lower the modelled decode-attention time slightly. This
# property is about the cost model's formulas, from aggregates to FLOPs, bytes and time.
_H100 = load_hardware("h100-sxm")
H100 = dataclasses.replace(
    _H100, efficiency=(("gemm_wave", 0.0), ("attn_wave", 0.0), *_H100.efficiency)
)
CONTEXTS = [
    CostContext(load_model("llama-3.1-8b"), H100, Parallelism(), DTypes(), 0.002),
    CostContext(load_model("llama-3.1-70b"), H100, Parallelism(tp=4, pp=2), DTypes("fp8", "fp8", "fp8"), 0.002),
    CostContext(load_model("deepseek-v3"), H100, Parallelism(tp=8, dp_attn=2, ep=16), DTypes("fp8", "fp8", "fp8"), 0.002, 1.3),
    CostContext(load_model("gpt-oss-120b"), H100, Parallelism(tp=2, ep=2), DTypes(), 0.002),
]  # fmt: skip


@st.composite
def batches(draw):
    chunks = draw(st.lists(st.tuples(st.integers(1, 2048), st.integers(0, 8192)), max_size=3))
    decode = draw(st.lists(st.integers(1, 16384), max_size=40))
    return chunks, decode


def _agg(chunks, decode) -> Aggregates:
    return Aggregates(
        prefill_tokens=sum(c for c, _ in chunks),
        prefill_seqs=len(chunks),
        prefill_attn=sum(c * p + c * (c + 1) // 2 for c, p in chunks),
        prefill_ctx=sum(p for _, p in chunks),
        decode_seqs=len(decode),
        decode_ctx=sum(decode),
        sampled=len(chunks) + len(decode),
    )


@settings(max_examples=60, deadline=None)
@given(batches(), st.sampled_from(range(len(CONTEXTS))), st.integers(1, 512), st.integers(1, 2048))
def test_step_cost_non_decreasing_in_tokens(batch, which, extra_ctx, extra_chunk):
    chunks, decode = batch
    ctx = CONTEXTS[which]
    base = step_cost(ctx, "colocated", _agg(chunks, decode)).seconds
    grown_decode = decode + [extra_ctx]  # one more decoding sequence
    assert step_cost(ctx, "colocated", _agg(chunks, grown_decode)).seconds >= base
    if decode:  # a longer context for one sequence
        longer = [decode[0] + extra_ctx, *decode[1:]]
        assert step_cost(ctx, "colocated", _agg(chunks, longer)).seconds >= base
    grown_chunks = chunks + [(extra_chunk, 0)]  # one more prefill chunk
    assert step_cost(ctx, "colocated", _agg(grown_chunks, decode)).seconds >= base
    if chunks:  # a bigger chunk, or the same chunk after a longer cached prefix
        (c, p), rest = chunks[0], chunks[1:]
        assert (
            step_cost(ctx, "colocated", _agg([(c + extra_chunk, p), *rest], decode)).seconds >= base
        )
        assert (
            step_cost(ctx, "colocated", _agg([(c, p + extra_ctx), *rest], decode)).seconds >= base
        )


@settings(max_examples=40, deadline=None)
@given(
    batches(),
    st.sampled_from(range(len(CONTEXTS))),
    st.sampled_from(["colocated", "attention", "ffn"]),
)
def test_breakdown_sums_to_step_cost(batch, which, role):
    ctx = CONTEXTS[which]
    agg = _agg(*batch)
    total = step_cost(ctx, role, agg)
    ops = breakdown(ctx, role, agg)
    assert sum(o.count * o.seconds for o in ops) + ctx.overhead_s == pytest.approx(
        total.seconds, rel=1e-12
    )
    assert all(o.seconds >= 0 and o.flops >= 0 and o.bytes >= 0 for o in ops)
