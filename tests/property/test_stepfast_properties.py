"""Hypothesis: the engine's hot path (cost/stepfast.py) gives the step costs of the plan's general
path to the bit, on random batches, for dense, windowed, MLA, MoE and attention-DP models, with
and without an engine's kernels, for every role."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from servesim.cost.step import CostContext, StepCost, _plan
from servesim.cost.stepfast import bind_step_cost
from servesim.specs.config import Parallelism
from servesim.specs.dtypes import DTypes
from servesim.specs.engines import engine_kernels
from servesim.specs.hardware import load_hardware
from servesim.specs.model import load_model

H100 = load_hardware("h100-sxm")
A100 = load_hardware("a100-sxm")
CONTEXTS = [
    CostContext(load_model("llama-3.1-8b"), A100, Parallelism(), DTypes(), 0.002),
    CostContext(load_model("llama-3.1-8b"), H100, Parallelism(tp=2), DTypes(), 0.001,
                engine=engine_kernels("vllm@0.6", H100, 2.0)),
    CostContext(load_model("llama-3.1-70b"), H100, Parallelism(tp=4, pp=2), DTypes("fp8", "fp8", "fp8"), 0.002),
    CostContext(load_model("deepseek-v3"), H100, Parallelism(tp=8, dp_attn=2, ep=16), DTypes("fp8", "fp8", "fp8"), 0.002, 1.3),
    CostContext(load_model("gpt-oss-120b"), H100, Parallelism(tp=2, ep=2), DTypes(), 0.002,
                engine=engine_kernels("sglang", H100, 2.0)),
    CostContext(load_model("gemma-3-4b"), H100, Parallelism(), DTypes(), 0.0015),
]  # fmt: skip


@st.composite
def batches(draw):
    chunks = draw(st.lists(st.tuples(st.integers(1, 2048), st.integers(0, 8192)), max_size=3))
    decode = draw(st.lists(st.integers(1, 40000), max_size=40))
    return chunks, decode


def _agg(chunks, decode) -> tuple:
    return (
        sum(c for c, _ in chunks),
        len(chunks),
        sum(c * p + c * (c + 1) // 2 for c, p in chunks),
        sum(p for _, p in chunks),
        len(decode),
        sum(decode),
        len(chunks) + len(decode),
    )


@settings(max_examples=80, deadline=None)
@given(
    batches(),
    st.sampled_from(range(len(CONTEXTS))),
    st.sampled_from(["colocated", "attention", "ffn"]),
)
def test_bound_cost_equals_plan_cost_to_the_bit(batch, which, role):
    ctx = CONTEXTS[which]
    cost, _ = bind_step_cost(ctx, role)
    agg = _agg(*batch)
    assert type(cost(agg)) is StepCost and cost(agg).seconds == cost(agg)[0]
    if not _plan(ctx, role).host_overlap:  # else plan.cost hides the host time (below)
        assert tuple(cost(agg)) == tuple(_plan(ctx, role)._plain(agg))
    assert tuple(cost(agg)) == tuple(_plan(ctx, role).cost(agg))


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.integers(1, 40000), min_size=1, max_size=300),
    st.sampled_from(range(len(CONTEXTS))),
    st.sampled_from(["colocated", "attention"]),
    st.integers(1, 64),
)
def test_decode_fn_equals_plan_cost_over_a_run_of_decode_steps(decode, which, role, steps):
    """A fast-forward run: the same n sequences, the summed context growing by n per step."""
    ctx = CONTEXTS[which]
    _, decode_fn = bind_step_cost(ctx, role)
    n, dc = len(decode), sum(decode)
    f = decode_fn(n)
    assert f is not None
    plan = _plan(ctx, role)
    assert type(f(dc)) is StepCost
    for _ in range(steps):
        assert tuple(f(dc)) == tuple(plan.cost((0, 0, 0, 0, n, dc, n)))
        dc += n


def test_two_batch_overlap_plans_take_the_general_path():
    ctx = CostContext(load_model("deepseek-v3"), H100, Parallelism(tp=8, dp_attn=8, ep=8),
                      DTypes("fp8", "fp8", "fp8"), 0.002,
                      engine=engine_kernels("sglang+tbo", H100, 1.0, 1.0))  # fmt: skip
    cost, decode_fn = bind_step_cost(ctx, "colocated")
    assert decode_fn(8) is None
    agg = (0, 0, 0, 0, 64, 64 * 3000, 64)
    assert tuple(cost(agg)) == tuple(_plan(ctx, "colocated").cost(agg))
