"""Speculative decoding in the engine: the decode set of a pool with ``speculative``.

Each step every decoding sequence verifies k drafts; how many it accepts is drawn per sequence
(numpy, vectorised over the set: one ``random(n)`` call per step, inverted through the
product-form distribution, so a step costs O(1) Python work), from the pool's acceptance model (specs/speculative.py) with a Generator of its
own (a SeedSequence child of the run seed per instance: deterministic for a seed, independent of
the other streams). A sequence emits its accepted drafts plus the bonus token, capped by what it
has left to emit.

KV: the verification pass writes the KV of k+1 tokens per sequence, so before a step each
sequence holds ``blocks_for(context + k + 1)`` blocks, never more than its last token needs (so a
request that fits the KV without speculation fits with it). The slots of rejected drafts stay
allocated and are reused as the context grows, as in vLLM's paged cache; the set keeps per
sequence ``held`` blocks in numpy arrays and the KV manager sees the same totals as without
speculation.

Fast-forward is off for speculative instances: how far each sequence gets depends on draws, so
finishing steps are not known in advance (every step goes through SimPy; results are the same).

Scheduling: with a mixing policy (sarathi, orca) the decode set takes n (k+1) tokens of the
step's token budget (``max_tokens`` seen by the policy is lowered by n k); prefill chunks share
the verification pass. ``disable_by_batch_size`` B: while more than B sequences decode, steps
run without speculation (plain decode, no draft), as vLLM's speculative_disable_by_batch_size.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from servesim.sim.request import DECODE, PREFILL, Request

MIXING_POLICIES = ("sarathi", "orca")
SPEC_SEED_KEY = 7_300  # spawn key prefix of the speculative streams (not used by rng_streams)


class SpecStats:
    """Counters of a pool's speculative steps, per instance and per step (arrays at the end)."""

    def __init__(self, k: int):
        self.k = k
        self.spec_steps = 0  # steps that speculated
        self.plain_steps = 0  # decode steps with speculation switched off (batch too large)
        self.seq_steps = 0  # sum over speculative steps of the sequences in them
        self.emitted = 0  # tokens those sequence-steps emitted (bonus included)
        self.accepted_at = np.zeros(k, dtype=np.int64)  # drafts accepted at each position
        self.draft_s = 0.0
        self.verify_s = 0.0
        self.rows: list[tuple[int, float, int]] = []  # (instance, start_s, extra tokens)

    def merge(self, other: SpecStats) -> None:
        self.spec_steps += other.spec_steps
        self.plain_steps += other.plain_steps
        self.seq_steps += other.seq_steps
        self.emitted += other.emitted
        self.accepted_at += other.accepted_at
        self.draft_s += other.draft_s
        self.verify_s += other.verify_s
        self.rows += other.rows


class SpecDecodeSet:
    """The running decodes of a speculative instance (DecodeSet's interface, per-sequence numpy
    state: context, tokens left to emit, blocks held)."""

    def __init__(self, block_size: int, spec: Any, rng: np.random.Generator):
        self.bs = block_size
        self.k = spec.k
        # P(at least j drafts accepted) = p1 ... pj, ascending: one uniform u per sequence
        # accepts the j drafts with u < p1 ... pj (the product form, one draw instead of k)
        self.reach_asc = np.cumprod(np.asarray(spec.per_position, dtype=float))[::-1].copy()
        self.limit = spec.disable_by_batch_size
        self.rng = rng
        self.members: dict[int, Request] = {}
        self.slot: dict[int, int] = {}  # seq -> index in the arrays
        self.reqs: list[Request] = []  # index -> request
        cap = 64
        self.ctx = np.zeros(cap, dtype=np.int64)  # tokens in KV
        self.rem = np.zeros(cap, dtype=np.int64)  # tokens still to emit
        self.held = np.zeros(cap, dtype=np.int64)  # KV blocks held (prefix blocks included)
        self.n = 0
        self.dsum = 0
        self.clock = 0
        self.alloc_clock = 0
        self.k_step = 0  # draft tokens of the step being formed (0: no speculation)

    # -- what the instance and schedulers read -------------------------------------------------
    def k_now(self) -> int:
        return self.k if self.limit is None or self.n <= self.limit else 0

    def _blocks(self, n: int, k: int) -> np.ndarray:
        """Blocks each sequence holds for a step with k drafts: its context plus the k+1 tokens
        the verification writes, never past its last token (context + tokens left - 1)."""
        look = np.minimum(k + 1, self.rem[:n])
        return -(-(self.ctx[:n] + look) // self.bs)

    def blocks_needed(self) -> int:
        if self.alloc_clock != self.clock or not self.n:
            return 0
        self.k_step = self.k_now()
        n = self.n
        return int(np.maximum(self._blocks(n, self.k_step) - self.held[:n], 0).sum())

    def newest_seq(self) -> int:
        return max(self.members) if self.members else -1

    def first_finish(self) -> int:  # fast-forward is off for speculative instances
        return self.clock + 1

    # -- membership ----------------------------------------------------------------------------
    def join(self, r: Request) -> None:
        r.state = DECODE
        r.join = self.clock
        r.ctx0 = r.target
        i = self.n
        if i == self.ctx.size:
            for name in ("ctx", "rem", "held"):
                a = getattr(self, name)
                setattr(self, name, np.concatenate((a, np.zeros_like(a))))
        self.ctx[i] = r.target
        self.rem[i] = r.output - r.generated
        self.held[i] = r.blocks + len(r.cached_hashes)
        self.members[r.seq] = r
        self.slot[r.seq] = i
        self.reqs.append(r)
        self.n += 1
        self.dsum += r.target

    def leave(self, r: Request) -> None:
        i = self.slot.pop(r.seq)
        del self.members[r.seq]
        held = int(self.held[i])
        if self.alloc_clock == self.clock + 1:  # the step's growth was allocated for it too
            look = min(self.k_step + 1, int(self.rem[i]))
            held = max(held, -(-(int(self.ctx[i]) + look) // self.bs))
        r.blocks = held - len(r.cached_hashes)
        r.generated = r.output - int(self.rem[i])
        self.dsum -= int(self.ctx[i])
        last = self.n - 1
        if i != last:  # move the last sequence into the hole
            for a in (self.ctx, self.rem, self.held):
                a[i] = a[last]
            moved = self.reqs[last]
            self.reqs[i] = moved
            self.slot[moved.seq] = i
        self.reqs.pop()
        self.n = last
        if not self.n:
            self.alloc_clock = self.clock

    # -- one step ------------------------------------------------------------------------------
    def advance(self, stats: SpecStats) -> tuple[list[Request], int]:
        """Apply one step: draw acceptances, emit tokens. Returns (finished requests, tokens
        emitted by the set)."""
        n, k = self.n, self.k_step
        if self.alloc_clock == self.clock + 1:
            np.maximum(self.held[:n], self._blocks(n, k), out=self.held[:n])
        self.clock += 1
        self.alloc_clock = self.clock
        rem = self.rem[:n]
        if k:
            acc = k - np.searchsorted(self.reach_asc, self.rng.random(n), side="right")
            emit = np.minimum(acc + 1, rem)
            stats.spec_steps += 1
            stats.seq_steps += n
            # sequences that accepted at least j drafts, j = 1..k
            stats.accepted_at += np.cumsum(np.bincount(acc, minlength=k + 1)[::-1])[::-1][1:]
        else:
            emit = np.minimum(1, rem)
            stats.plain_steps += 1
        total = int(emit.sum())
        if k:
            stats.emitted += total
        self.ctx[:n] += emit
        rem -= emit
        self.dsum += total
        done_idx = np.flatnonzero(rem == 0)
        reqs = self.reqs
        done = [reqs[j] for j in done_idx.tolist()]
        done.sort(key=lambda r: r.seq)
        return done, total


def spec_class(base: type) -> type:
    """``base`` (an Instance class) with speculative decoding (its decode set and step)."""

    class SpecInstance(SpecMixin, base):
        pass

    SpecInstance.__name__ = f"Spec{base.__name__}"
    return SpecInstance


class SpecMixin:
    """Overrides of Instance for a speculative pool (the rest is the base class's)."""

    spec_cost: Any
    stats: SpecStats

    @property
    def max_tokens(self) -> int:
        # a mixing policy's budget counts the k verification tokens of every decoding sequence
        return self._max_tokens - (self.dec.n * self.dec.k_now() if self._mixing else 0)

    @max_tokens.setter
    def max_tokens(self, v: int) -> None:
        self._max_tokens = v

    def aggregates(self, batch: Any) -> tuple:
        base = super().aggregates(batch)  # type: ignore[misc]
        return (*base, self.dec.k_step if base[4] else 0)

    def apply(self, batch: Any, start: float, end: float, cost: Any, agg: tuple) -> None:
        dec = self.dec
        n = dec.n if batch.decode else 0
        extra = 0
        if n:
            done, total = dec.advance(self.stats)
            self.load -= total
            extra = total - n
            parts = self.spec_cost(agg)
            self.stats.draft_s += parts.draft_s
            self.stats.verify_s += parts.verify_s
            if extra:
                self.stats.rows.append((self.id, start, extra))
            for r in done:
                dec.leave(r)
                self.finish(r, end)
        fin = False
        emitted = n + extra
        for r, c in batch.chunks:
            r.computed += c
            self.load -= c
            if r.computed == r.target:
                fin = True
                emitted += 1
                self.load -= 1
                self.prefill_done(r, end)
        if fin:
            self.prefilling = [r for r in self.prefilling if r.state == PREFILL]
        self.steps += 1
        self.sink.log(self, start, end - start, cost, agg, emitted, 1)


def make_spec_cost(ctx: Any, role: str, spec: Any, step_fn: Any) -> Any:
    """agg (Aggregates order + k of the step) -> SpecStepCost, memoised."""
    from servesim.cost import draft_context, spec_step_cost

    dctx = draft_context(ctx, spec)
    memo: dict = {}

    def cost(agg: tuple) -> Any:
        c = memo.get(agg)
        if c is None:
            if len(memo) >= 65_536:
                memo.clear()
            c = spec_step_cost(ctx, role, agg[:7], spec, step_fn, dctx, bool(agg[7]))
            if not c.total.seconds > 0:
                raise ValueError(f"step cost must be positive, got {c.total.seconds!r} for {agg}")
            memo[agg] = c
        return c

    cost((0, 0, 0, 0, 1, 2, 1, spec.k))  # input errors (a drafter that cannot run) surface now
    return cost


def enable(pool: Any, ctx: Any, spec: Any, step_fn: Any, seed: int) -> None:
    """Turn the instances of ``pool`` into speculative ones (after the pool built them)."""
    policy = pool.spec.scheduler.policy
    for inst in pool.instances:
        inst.__class__ = spec_class(type(inst))
        inst.max_tokens = inst.__dict__.pop("max_tokens")
        inst._mixing = policy in MIXING_POLICIES
        ss = np.random.SeedSequence(int(seed), spawn_key=(SPEC_SEED_KEY, inst.id))
        inst.dec = SpecDecodeSet(inst.bs, spec, np.random.default_rng(ss))
        inst.ff = inst.ff_idle = False
        inst.spec_cost = make_spec_cost(ctx, pool.spec.role, spec, step_fn)
        inst.cost = _totals(inst.spec_cost)
        inst.stats = SpecStats(spec.k)


def _totals(spec_cost: Any) -> Any:
    return lambda agg: spec_cost(agg).total


def collect(pools: list, steps: dict[str, np.ndarray]) -> dict[str, Any]:
    """The run's speculative counters (RawRun.spec) and, on the step arrays, ``spec_tokens``:
    tokens beyond one per decoding sequence that each step row emitted."""
    stats = None
    method = None
    for pool in pools:
        sp = getattr(pool.spec, "speculative", None)
        if sp is None:
            continue
        method = sp.method
        for inst in pool.instances:
            if stats is None:
                stats = SpecStats(sp.k)
            if stats.k == inst.stats.k:
                stats.merge(inst.stats)
    if stats is None:
        return {}
    extra = np.zeros(len(steps["instance"]), dtype=np.int64)
    if stats.rows:
        rec = np.array(stats.rows, dtype=float)
        inst = np.asarray(steps["instance"], dtype=np.int64)
        start = np.asarray(steps["start_s"], dtype=float)
        order = np.lexsort((start, inst))
        key_i, key_s = inst[order], start[order]
        for iid in np.unique(rec[:, 0]).astype(np.int64).tolist():
            lo, hi = np.searchsorted(key_i, [iid, iid + 1])
            sel = rec[:, 0] == iid
            pos = np.searchsorted(key_s[lo:hi], rec[sel, 1], side="right") - 1
            np.add.at(extra, order[lo + pos], rec[sel, 2].astype(np.int64))
    steps["spec_tokens"] = extra
    return {
        "method": method,
        "k": stats.k,
        "spec_steps": stats.spec_steps,
        "plain_steps": stats.plain_steps,
        "seq_steps": stats.seq_steps,
        "emitted": stats.emitted,
        "accepted_at": stats.accepted_at,
        "draft_s": stats.draft_s,
        "verify_s": stats.verify_s,
    }
