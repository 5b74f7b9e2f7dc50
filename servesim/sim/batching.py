"""Iteration schedulers: policy only.

A scheduler has one method, ``next_batch(ctx: BatchContext) -> Batch | None``. It sees the batch
context below (queues, counts, budgets and the primitives ``grow_decodes``, ``grow_prefill``,
``try_admit``, ``preempt_newest``, which check before acting) and returns what it scheduled and
how many requests it preempted (``instance.Batch``). It never touches SimPy, records no metrics
and computes no cost. Ties: the waiting queue's order (FIFO by arrival, or priority; see
queues.py); preempted requests go back to its front (FIFO) or their place (priority); preemption
takes the most recently admitted request.

``ff_safe`` declares the property fast-forwarding relies on: if a batch is decode-only and
preempted nothing, then while only decodes progress (free KV shrinks, nothing else changes) the
policy keeps choosing decode-only batches. Each policy below has it because its admission tests
only get harder as free KV shrinks.
"""

from __future__ import annotations

from typing import Any, Protocol

from servesim.sim.instance import Batch
from servesim.sim.request import PREFILL
from servesim.specs.config import ENGINE_PROFILES, POLICIES


class BatchContext(Protocol):
    """All a scheduler may read or call (sim.instance.Instance provides it)."""

    waiting: Any  # the waiting queue (queues.py); [0] is the head
    prefilling: list  # admitted requests whose prefill is not done, oldest first
    max_seqs: int | None
    max_tokens: int

    @property
    def n_dec(self) -> int: ...  # requests in the decode set

    @property
    def n_running(self) -> int: ...  # prefilling + decoding

    def grow_decodes(self) -> int: ...  # the decode set's next KV growth; returns preempted

    def grow_prefill(self, r: Any, c: int) -> tuple[bool, int]: ...  # (scheduled, preempted)

    def try_admit(self, budget: int, whole: bool, lone: bool) -> int: ...  # chunk or 0

    def preempt_newest(self) -> Any: ...


CONTEXT_NAMES = frozenset(
    ("waiting", "prefilling", "max_seqs", "max_tokens", "n_dec", "n_running", "grow_decodes",
     "grow_prefill", "try_admit", "preempt_newest")
)  # fmt: skip


def _seats(inst: BatchContext) -> bool:
    return inst.max_seqs is None or inst.n_running < inst.max_seqs


def _continue_prefills(inst: BatchContext, budget: int) -> tuple[list, int, int]:
    """Next chunks of the running (partial) prefills, oldest first, under ``budget`` tokens:
    (chunks, budget left, requests preempted to make room)."""
    chunks, preempted = [], 0
    for r in list(inst.prefilling):
        if budget <= 0:
            break
        if r.state != PREFILL:  # preempted while this batch was formed
            continue
        c = min(r.target - r.computed, budget)
        ok, p = inst.grow_prefill(r, c)
        preempted += p
        if not ok:
            break
        chunks.append((r, c))
        budget -= c
    return chunks, budget, preempted


class SarathiScheduler:
    """Chunked prefill under a token budget, decodes first (Sarathi-Serve; vLLM V1 default).

    Running decodes take one token each, then running (partial) prefills continue, then waiting
    requests are admitted, all under ``max_num_batched_tokens``. A step that preempted admits
    nothing new (vLLM V1).
    """

    name = "sarathi"
    ff_safe = True

    def next_batch(self, inst: BatchContext) -> Batch | None:
        preempted = inst.grow_decodes() if inst.n_dec else 0
        if not inst.prefilling and not inst.waiting:  # decodes only (the common case)
            return Batch([], True, preempted) if inst.n_dec else None
        chunks, budget, p = _continue_prefills(inst, inst.max_tokens - inst.n_dec)
        preempted += p
        if p_budget := (budget if not preempted else 0):
            while inst.waiting and p_budget > 0 and _seats(inst):
                c = inst.try_admit(p_budget, whole=False, lone=False)
                if not c:
                    break
                chunks.append((inst.prefilling[-1], c))
                p_budget -= c
        if not chunks and not inst.n_dec:
            return None
        return Batch(chunks, inst.n_dec > 0, preempted)


class VllmScheduler:
    """Prefill-first without chunking (vLLM V0 default): a step is either whole prefills of
    admitted requests (decodes pause) or one decode token for every running request."""

    name = "vllm"
    ff_safe = True

    def next_batch(self, inst: BatchContext) -> Batch | None:
        chunks = []
        budget = inst.max_tokens
        while inst.waiting and _seats(inst):
            c = inst.try_admit(budget, whole=True, lone=not chunks)
            if not c:
                break
            chunks.append((inst.prefilling[-1], c))
            budget -= c
            if budget <= 0:
                break
        if chunks:
            return Batch(chunks, False, 0)
        if not inst.n_dec:
            return None
        preempted = inst.grow_decodes()
        if not inst.n_dec:
            return None
        return Batch([], True, preempted)


class PrefillFirstScheduler:
    """Chunked prefill with prefill priority, no mixing (SGLang's default scheduler).

    A step is either prefill chunks under ``max_num_batched_tokens`` (SGLang's
    chunked_prefill_size: the running partial prefill first, then newly admitted requests) while
    decodes pause, or, when no prefill can be formed, one decode token for every running request.
    SGLang mixes decodes into prefill batches only with ``--enable-mixed-chunk``, off by default.
    """

    name = "prefill_first"
    ff_safe = True

    def next_batch(self, inst: BatchContext) -> Batch | None:
        chunks, budget, preempted = _continue_prefills(inst, inst.max_tokens)
        if not preempted:
            while inst.waiting and budget > 0 and _seats(inst):
                c = inst.try_admit(budget, whole=False, lone=False)
                if not c:
                    break
                chunks.append((inst.prefilling[-1], c))
                budget -= c
        if chunks:
            return Batch(chunks, False, preempted)
        if not inst.n_dec:
            return None
        preempted += inst.grow_decodes()
        return Batch([], True, preempted) if inst.n_dec else None


class OrcaScheduler:
    """Iteration-level batching (Orca): decodes plus whole prefills of newly admitted requests.

    One token budget covers both: every running decode takes one token of
    ``max_num_batched_tokens`` and whole prompts fill the rest (TensorRT-LLM's
    MicroBatchScheduler counts generation tokens against max_num_tokens the same way); the first
    prefill of a batch may exceed what is left (it could never run otherwise)."""

    name = "orca"
    ff_safe = True

    def next_batch(self, inst: BatchContext) -> Batch | None:
        preempted = inst.grow_decodes() if inst.n_dec else 0
        chunks = []
        # partial prefills exist only when a prompt was preempted mid-way; orca restarts whole
        for r in list(inst.prefilling):
            if r.state != PREFILL:
                continue
            ok, p = inst.grow_prefill(r, r.target - r.computed)
            preempted += p
            if not ok:
                break
            chunks.append((r, r.target - r.computed))
        if not preempted:
            budget = inst.max_tokens - inst.n_dec - sum(c for _, c in chunks)
            while inst.waiting and _seats(inst):
                c = inst.try_admit(max(budget, 0), whole=True, lone=not chunks)
                if not c:
                    break
                chunks.append((inst.prefilling[-1], c))
                budget -= c
        if not chunks and not inst.n_dec:
            return None
        return Batch(chunks, inst.n_dec > 0, preempted)


class StaticScheduler:
    """Request-level batching: admit up to ``max_num_seqs`` requests when the instance is empty,
    prefill them together, decode until every one has finished; KV for the whole output is
    reserved at admission, so nothing is ever preempted."""

    name = "static"
    ff_safe = True

    def next_batch(self, inst: BatchContext) -> Batch | None:
        if inst.n_running == 0 and inst.waiting:
            chunks = []
            while inst.waiting and _seats(inst):
                c = inst.try_admit(0, whole=True, lone=True)  # the token budget does not apply
                if not c:
                    break
                chunks.append((inst.prefilling[-1], c))
            if chunks:
                return Batch(chunks, False, 0)
        if inst.prefilling:
            chunks = [(r, r.target - r.computed) for r in inst.prefilling]
            return Batch(chunks, inst.n_dec > 0, 0)
        if not inst.n_dec:
            return None
        return Batch([], True, inst.grow_decodes())


# The policy names are specs.config.POLICIES (the one registry the loader checks against).
SCHEDULERS: dict[str, type] = {
    c.name: c
    for c in (
        VllmScheduler,
        SarathiScheduler,
        PrefillFirstScheduler,
        OrcaScheduler,
        StaticScheduler,
    )
}
assert tuple(SCHEDULERS) == POLICIES, "every policy name has exactly one scheduler class"

__all__ = ["ENGINE_PROFILES", "SCHEDULERS", "Batch", "BatchContext"]
