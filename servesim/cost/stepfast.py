"""The engine's hot path into step.py's plans: the same step costs with the per-call overhead
taken out.

``bind_step_cost(ctx, role) -> (cost, decode)`` (the cost face exports it):

- ``cost(agg)``: ``plan.cost(agg)`` for an aggregates tuple (a plain tuple in Aggregates order),
  with every plan constant bound once as a local instead of read per call (no memo: a step's
  aggregates rarely repeat);
- ``decode(n)``: for decode-only steps of ``n`` sequences, ``f(decode_ctx) -> StepCost``, equal
  to ``plan.cost((0, 0, 0, 0, n, decode_ctx, n))``. For a fixed decode batch the row-count
  operators' totals, the sequence count and the kernels' constants do not depend on the context:
  they are computed once per n, so a step costs one kernel call per attention operator.

Both repeat ``_Plan._plain``'s operations in the same order (floating point results are equal to
the bit; tests/property/test_stepfast_properties.py compares them on random batches) and call the kernel
functions the plan holds, so a change to a kernel or to the operator list shows here unchanged.
Two-batch overlap plans use ``plan.cost`` (its split step takes the general path); an engine
with an overlap scheduler gets the same functions with the host time hidden as ``plan.cost``
hides it.
"""

from __future__ import annotations

import math
from typing import Any

from servesim.cost.step import Aggregates, CostContext, StepCost, _hide_host, _plan


def bind_step_cost(ctx: CostContext, role: str) -> tuple:
    """``(cost, decode)`` for one (ctx, role), the engine's hot path: ``cost(agg)`` is
    ``step_cost(ctx, role, agg)`` for an aggregates tuple (a plain tuple in Aggregates order is
    enough), and ``decode(n)`` gives a function of the decode context for decode-only steps of n
    sequences (None where only ``cost`` applies)."""
    return bind(_plan(ctx, role))


def bind(plan: Any) -> tuple:
    """``(cost, decode)`` for one plan (see the module docstring)."""
    if plan.tbo:
        return plan.cost, lambda n: None
    if plan.host_overlap:  # plan.cost hides the host time under the GPU's (overlap scheduler)
        return _hidden(cost_fn(plan), plan.consts[2]), lambda n: _hidden(
            decode_fn(plan, n), plan.consts[2]
        )
    return cost_fn(plan), lambda n: decode_fn(plan, n)


def _hidden(fn, host: float):
    """``fn`` with step._hide_host applied to its result, as plan.cost does (None stays None)."""
    if fn is None:
        return None
    return lambda x: _hide_host(fn(x), host)


def cost_fn(plan: Any):
    """``agg -> StepCost``: ``plan._plain`` with its constants bound (plans without two-batch
    overlap, where ``plan.cost`` is ``_plain``)."""
    use_s, use_pkv, use_dec = plan.key_srcs
    base_get, base_new = plan.base.get, plan._base
    dp, stage, overhead_s, devices = plan.consts
    pscale, dscale = plan.scale["attn_prefill"], plan.scale["attn_decode"]
    attn = plan.attn_fast
    eager = plan.eager_kernels
    windowed, decode_row, prefill_row = plan.windowed, plan._decode_row, plan._prefill_row
    new = tuple.__new__  # StepCost(...) without its Python-level __new__
    ceil = math.ceil
    pad = plan.pad  # CUDA-graph padding of decode-only steps (step._graph_pad), or None

    def cost(agg: tuple) -> StepCost:
        pt, ps, pa, pc, ds, dc, sampled = agg
        rows, srows = pt + ds, sampled
        if ps == 0 and pt == 0 and pad is not None and ds > 0:  # padded CUDA graph rows
            rows = srows = pad(ds)
        key = (rows, srows if use_s else 0, pt + pc if use_pkv else 0, rows - pt if use_dec else 0)
        base = base_get(key)
        if base is None:
            base = base_new(key)
        c, mem, k, o, f, b, cb = base
        for op, is_prefill, kw, count, window, kernel, kv_tok, qo_tok, qh, qkv in attn:
            # a kernel with no sequences contributes exact zeros: skipped
            if is_prefill:
                if ps <= 0:
                    continue
                new_t, pairs, ctxt = pt / dp, pa / dp, pc / dp
                seqs = ps if dp == 1 else ceil(ps / dp)
                if window:
                    pairs = min(pairs, new_t * window)
                    ctxt = min(ctxt, seqs * window)
                by = (ctxt + new_t) * kv_tok + new_t * qo_tok
                fl = 2.0 * pairs * qh * qkv
                if pairs > 0.0:
                    causal = min(pairs, new_t * (new_t + 1) / 2.0)  # as step._causal_pairs
                    s, bound = kernel(fl, by, seqs, new_t, pairs, causal)
                    s *= pscale
                else:  # the general kernel model derives pairs from the FLOPs
                    fl, by, s, bound, _ = prefill_row(op, kw, Aggregates(*agg))
            else:
                if ds <= 0:
                    continue
                seqs = ds if dp == 1 else ceil(ds / dp)
                pairs = dc / dp
                if window and pairs >= seqs * window:
                    # every sequence is past its window: the row depends on the batch size only
                    row = windowed.get((op.name, seqs))
                    if row is None:
                        row = windowed[(op.name, seqs)] = decode_row(op, kw, seqs, seqs * window)
                    fl, by, s, bound, _ = row
                else:
                    by = pairs * kv_tok + seqs * qo_tok
                    fl = 2.0 * pairs * qh * qkv
                    s, bound = kernel(fl, by, seqs, pairs)
                    s *= dscale
            t = count * s
            if bound == "compute":
                c += t
            elif bound == "memory":
                mem += t
            else:
                o += t
            f += count * fl * stage
            b += count * by * stage
        ovh = o + overhead_s
        if ps > 0 and eager:
            # as _plain: host launch time shows only when it exceeds the GPU time
            ovh += max(0.0, eager - (c + mem + k + o))
        return new(StepCost, (c + mem + k + ovh, f, b, cb, c, mem, k, ovh, devices))

    return cost


def decode_fn(plan: Any, n: int):
    """``decode_ctx -> StepCost`` for decode-only steps of ``n`` > 0 sequences (memoised per n on
    the plan); None for two-batch-overlap plans."""
    if plan.tbo or n <= 0:
        return None
    fns = plan.decode_fns
    fn = fns.get(n)
    if fn is None:
        fn = fns[n] = _decode_fn(plan, n)
    return fn


def _decode_fn(plan: Any, n: int):
    use_s, _, use_dec = plan.key_srcs
    m = plan.pad(n) if plan.pad is not None else n  # the padded CUDA graph's rows
    key = (m, m if use_s else 0, 0, m if use_dec else 0)
    base = plan.base.get(key)
    if base is None:
        base = plan._base(key)
    c0, mem0, k, o0, f0, b0, cb = base
    dp, stage, overhead_s, devices = plan.consts
    dscale = plan.scale["attn_decode"]
    seqs = n if dp == 1 else math.ceil(n / dp)
    kernels = tuple(
        (op, kw, count, window, kernel, kv_tok, seqs * qo_tok, qh, qkv)
        for op, is_prefill, kw, count, window, kernel, kv_tok, qo_tok, qh, qkv in plan.attn_fast
        if not is_prefill
    )
    windowed, decode_row = plan.windowed, plan._decode_row
    new = tuple.__new__  # StepCost(...) without its Python-level __new__
    if len(kernels) == 1 and not kernels[0][3]:
        # one decode attention operator without a window (dense models): the loop below, unrolled
        _, _, count, _, kernel, kv_tok, qo_seqs, qh, qkv = kernels[0]

        def one(dc: int) -> StepCost:
            c, mem, o = c0, mem0, o0
            pairs = dc / dp
            by = pairs * kv_tok + qo_seqs
            fl = 2.0 * pairs * qh * qkv
            s, bound = kernel(fl, by, seqs, pairs)
            s *= dscale
            t = count * s
            if bound == "compute":
                c += t
            elif bound == "memory":
                mem += t
            else:
                o += t
            ovh = o + overhead_s
            f = f0 + count * fl * stage
            b = b0 + count * by * stage
            return new(StepCost, (c + mem + k + ovh, f, b, cb, c, mem, k, ovh, devices))

        return one

    def cost(dc: int) -> StepCost:
        c, mem, o, f, b = c0, mem0, o0, f0, b0
        pairs = dc / dp
        for op, kw, count, window, kernel, kv_tok, qo_seqs, qh, qkv in kernels:
            if window and pairs >= seqs * window:
                row = windowed.get((op.name, seqs))
                if row is None:
                    row = windowed[(op.name, seqs)] = decode_row(op, kw, seqs, seqs * window)
                fl, by, s, bound, _ = row
            else:
                by = pairs * kv_tok + qo_seqs
                fl = 2.0 * pairs * qh * qkv
                s, bound = kernel(fl, by, seqs, pairs)
                s *= dscale
            t = count * s
            if bound == "compute":
                c += t
            elif bound == "memory":
                mem += t
            else:
                o += t
            f += count * fl * stage
            b += count * by * stage
        ovh = o + overhead_s
        return new(StepCost, (c + mem + k + ovh, f, b, cb, c, mem, k, ovh, devices))

    return cost
