"""Cost of a speculative decoding step: drafting plus one target verification pass.

A step of a pool with ``speculative`` (k draft tokens) costs, for its n decoding sequences:

- the draft: k decode passes of the drafter over the n sequences. The drafter is a separate
  model at its own tensor parallelism (``draft``), or one decoder layer of the target's shape on
  the target's devices (``eagle``/``eagle3``: the EAGLE head, EAGLE-3's with its 32k draft
  vocabulary; ``mtp``: DeepSeek's MTP module, one more decoder layer of the target, reused for
  every draft position as vLLM and SGLang do; a config's ``num_nextn_predict_layers`` modules
  are all resident in memory), or nothing (``ngram``: a CPU lookup);
- the verification: one target pass over k+1 tokens per sequence, costed as a prefill chunk of
  k+1 tokens at the sequence's context (``Aggregates`` of a chunk; MLA models: k+1 absorbed
  decode rows, see verify_aggregates), so it is as cheap as a decode token while weights
  dominate and grows k+1-fold once the batch is compute-bound.

Prefill chunks of the same step share the verification pass. Each draft pass adds
DRAFT_PASS_OVERHEAD of the pool's per-step overhead (launch, sampling, input preparation of the
next pass).
Memory: the drafter's weights and its KV (per token, next to the target's) come off the KV
budget, so a speculative pool holds fewer KV tokens.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, NamedTuple

from servesim.cost.memory import (
    kv_bytes_per_token_per_device,
    kv_capacity_tokens,
    weight_bytes_per_device,
)
from servesim.cost.step import Aggregates, CostContext, StepCost, step_cost
from servesim.specs.config import Parallelism

# EAGLE-3 drafters predict over a reduced vocabulary (draft_vocab_size 32000 in
# huggingface.co/yuhuili/EAGLE3-LLaMA3.1-Instruct-8B/blob/main/config.json).
EAGLE3_DRAFT_VOCAB = 32_000
# Fixed cost of one draft pass as a fraction of the pool's per-step overhead. Fit: vLLM issue
# #20780 (Llama-3.1-8B, H100, batch 1): the step time (TPOT x acceptance length) grows by 0.73 ms
# (EAGLE) and 1.1 ms (EAGLE-3) per draft token; less the heads' roofline time here (0.55 ms with
# the 128k-vocabulary LM head, 0.29 ms with EAGLE-3's 32k one) that leaves 0.18 and 0.81 ms of
# fixed cost per pass (0.09 and 0.4 of h100-sxm's 2 ms per-step overhead): one constant cannot
# fit both. 0.4 gives the smallest largest speedup error over the 12 (method, k) points
# (scan of 0.3/0.4/0.5: experiments/speculative/compare.py; an in-sample fit).
DRAFT_PASS_OVERHEAD = 0.4


class SpecStepCost(NamedTuple):
    """A speculative step: the StepCost of the whole step plus its parts' seconds."""

    total: StepCost
    draft_s: float
    verify_s: float


def head_model(model: Any, method: str) -> Any:
    """One decoder layer of the target's shape: the EAGLE head or the MTP module."""
    moe = model.is_moe and method == "mtp"  # EAGLE heads are dense; DeepSeek's MTP layer is MoE
    kw: dict[str, Any] = {
        "num_layers": 1,
        "moe_layers": 1 if moe else 0,
        "dense_layers": 0 if moe else 1,
        "sliding_layers": 0,
        "sliding_window": None,
        "chunked_layers": 0,
        "attention_chunk_size": None,
        "name": f"{model.name}-{method}-head",
    }
    if not moe and model.is_moe:  # a dense EAGLE head on an MoE target: the expert width
        kw.update(num_experts=0, experts_per_token=0, num_shared_experts=0,
                  intermediate_size=model.intermediate_size or model.moe_intermediate_size)  # fmt: skip
    if method == "eagle3":
        kw["vocab_size"] = min(model.vocab_size, EAGLE3_DRAFT_VOCAB)
    return replace(model, **kw)


def draft_context(ctx: CostContext, spec: Any) -> CostContext | None:
    """The CostContext of one draft pass (None for ngram: no device work)."""
    if spec.method == "ngram":
        return None
    over = DRAFT_PASS_OVERHEAD * ctx.overhead_s
    if spec.method == "draft":
        par = Parallelism(tp=spec.draft_tensor_parallel_size)
        return CostContext(spec.draft_model, ctx.hardware, par, ctx.dtypes, over)
    head = head_model(ctx.model, spec.method)
    # the head's own layer on the target's devices; a dense head is not expert-parallel
    par = replace(ctx.parallel, pp=1, ep=ctx.parallel.ep if head.is_moe else 1)
    return CostContext(head, ctx.hardware, par, ctx.dtypes, over,
                       ctx.moe_imbalance)  # fmt: skip


def verify_aggregates(agg: tuple, k: int, mla: bool = False) -> Aggregates:
    """The target pass of a step whose n decoding sequences verify k drafts each (agg in
    cost.step.Aggregates order): every decode becomes a chunk of k+1 tokens at its context.

    MLA models (``mla``) verify on the weight-absorbed decode path (FlashMLA and the engines' MTP
    verification take k+1 query tokens per sequence over the compressed latent): each of the k+1
    tokens counts as a decode row with its own context, which reads a sequence's latent KV k+1
    times (an overestimate; the latent KV is a few percent of the bytes of a step of such a model).
    The prefill form would up-project every cached latent (``kv_b_proj`` over the context)."""
    pt, ps, pa, pc, n, dctx, sampled = agg
    if not n:
        return Aggregates(*agg)
    c = k + 1
    ctx_sum = dctx - n  # tokens in KV before the step
    if mla:
        return Aggregates(pt, ps, pa, pc, n * c, c * ctx_sum + n * c * (c + 1) // 2,
                          sampled - n + n * c)  # fmt: skip
    return Aggregates(pt + n * c, ps + n, pa + c * ctx_sum + n * c * (c + 1) // 2, pc + ctx_sum,
                      0, 0, sampled - n + n * c)  # fmt: skip


def _add(a: StepCost, b: StepCost, times: int) -> StepCost:
    return StepCost(
        a.seconds + times * b.seconds,
        a.flops + times * b.flops,
        a.bytes + times * b.bytes,
        a.comm_bytes + times * b.comm_bytes,
        a.compute_s + times * b.compute_s,
        a.memory_s + times * b.memory_s,
        a.comm_s + times * b.comm_s,
        a.overhead_s + times * b.overhead_s,
        a.devices,
    )


def spec_step_cost(
    ctx: CostContext,
    role: str,
    agg: tuple,
    spec: Any,
    step_fn: Any = step_cost,
    draft_ctx: CostContext | None = None,
    speculate: bool = True,
) -> SpecStepCost:
    """The step of ``agg`` (cost.step.Aggregates order) with speculation (``speculate``) or,
    when the engine switched it off for this batch, the plain step."""
    n = agg[4]
    if not n or not speculate:
        c = step_fn(ctx, role, Aggregates(*agg))
        return SpecStepCost(c, 0.0, c.seconds if n else 0.0)
    verify = step_fn(ctx, role, verify_aggregates(agg, spec.k, ctx.model.attention == "mla"))
    if draft_ctx is None:
        return SpecStepCost(verify, 0.0, verify.seconds)
    one = step_fn(draft_ctx, "colocated", Aggregates(0, 0, 0, 0, n, agg[5], n))
    total = _add(verify, one, spec.k)
    return SpecStepCost(total, spec.k * one.seconds, verify.seconds)


def draft_memory(ctx: CostContext, spec: Any) -> tuple[float, float]:
    """(weight bytes, KV bytes per token) of the drafter on one device of the target."""
    d = draft_context(ctx, spec)
    if d is None:
        return 0.0, 0.0
    model = d.model
    if spec.method == "mtp" and ctx.model.mtp_layers > 1:
        # the config's num_nextn_predict_layers MTP modules are all resident, each with its own
        # KV; a draft pass runs one of them (the cost above)
        n = ctx.model.mtp_layers
        layers = {"num_layers": n, "moe_layers": model.moe_layers * n}
        model = replace(model, **layers, dense_layers=n - layers["moe_layers"])
    return (
        weight_bytes_per_device(model, d.dtypes, d.parallel),
        kv_bytes_per_token_per_device(model, d.dtypes, d.parallel),
    )


def spec_kv_capacity_tokens(
    ctx: CostContext,
    spec: Any,
    gpu_memory_utilization: float,
    role: str,
    max_num_batched_tokens: int,
) -> int:
    """KV tokens of one instance once the drafter's weights and KV take their share."""
    tokens = kv_capacity_tokens(ctx, gpu_memory_utilization, role, max_num_batched_tokens)
    w, per_d = draft_memory(ctx, spec)
    if not tokens or (w == 0 and per_d == 0):
        return tokens
    dp = ctx.parallel.dp_attn
    per_t = kv_bytes_per_token_per_device(ctx.model, ctx.dtypes, ctx.parallel)
    free = (tokens // dp) * per_t - w
    return max(int(free // (per_t + per_d)), 0) * dp
