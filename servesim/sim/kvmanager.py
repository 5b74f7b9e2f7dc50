"""Request-level KV accounting of one instance, over its block pool (kvcache.KVCache).

Each decision is check-then-act: ``plan_admission`` says what admitting a request would take (or
None, changing nothing), ``commit_admission`` applies exactly that plan; ``allocate`` takes blocks
or returns False with nothing changed. Whom to preempt when memory runs out is the instance's
decision, not this module's.
"""

from __future__ import annotations

from typing import NamedTuple

from servesim.sim.kvcache import KVCache
from servesim.sim.request import Request


class Admission(NamedTuple):
    """What admitting a request with one prefill chunk takes."""

    chunk: int  # prefill tokens of its first chunk
    hit: int  # leading prompt blocks served by the prefix cache
    need: int  # private blocks to allocate


class KVManager:
    __slots__ = ("kv", "bs", "reserve")

    def __init__(self, kv: KVCache, reserve_output: bool = False):
        self.kv = kv
        self.bs = kv.block_size
        self.reserve = reserve_output  # KV for the whole output at admission (no preemption)

    def plan_admission(self, r: Request, budget: int, whole: bool, lone: bool) -> Admission | None:
        """Admitting ``r`` with a chunk of at most ``budget`` tokens, or None when it does not fit.

        ``whole``: only a whole prefill will do (no chunking); ``lone``: the batch has no prefill
        yet, so a whole prefill larger than the budget is allowed (it could never run otherwise).
        """
        kv = self.kv
        hit = 0
        keys = None
        if kv.prefix and r.prefix_hashes:
            if r.keys is None:  # computed once per request; not a change of KV state
                r.keys = kv.keys(r.prefix_hashes, r.prompt)
            keys = r.keys
            hit = min(kv.match(keys), (r.target - 1) // self.bs)
        cached = hit * self.bs
        rest = r.target - cached
        c = min(rest, budget)
        if whole and c < rest:
            if not lone:
                return None
            c = rest
        if c <= 0:
            return None
        tokens = cached + c
        if self.reserve:
            tokens = r.target + r.output - r.generated - 1
        need = kv.blocks_for(tokens) - hit
        from_lru = sum(1 for k in keys[:hit] if k in kv.lru) if hit else 0
        if need + from_lru > kv.available:
            return None
        return Admission(c, hit, need)

    def commit_admission(self, r: Request, adm: Admission) -> int:
        """Take the blocks of a plan; returns the prompt tokens served from the cache."""
        kv = self.kv
        hit = adm.hit
        if hit:
            kv.acquire(r.keys[:hit])
            r.cached_hashes = tuple(r.keys[:hit])
        kv.allocate(adm.need)
        cached = hit * self.bs
        r.blocks = adm.need
        r.reserved = self.reserve
        r.computed = cached
        if r.preemptions == 0:
            r.cached_tokens = cached
            kv.hits_tokens += cached
        return cached

    def prefill_growth(self, r: Request, c: int) -> int:
        """Blocks ``c`` more prefill tokens of running ``r`` need (<= 0: reserved already)."""
        return self.kv.blocks_for(r.computed + c) - len(r.cached_hashes) - r.blocks

    def allocate(self, r: Request | None, n: int) -> bool:
        """Take ``n`` private blocks (for ``r`` when given); False, nothing changed, if short."""
        if not self.kv.allocate(n):
            return False
        if r is not None:
            r.blocks += n
        return True

    def release(self, r: Request) -> None:
        """Give back everything ``r`` holds (private blocks, prefix references)."""
        self.kv.release(r.blocks)
        r.blocks = 0
        if r.cached_hashes:
            self.kv.unref(r.cached_hashes)
            r.cached_hashes = ()

    def publish_prefix(self, r: Request) -> None:
        """Hand the prompt's full blocks to the prefix cache once its prefill is computed."""
        if r.keys and len(r.cached_hashes) < len(r.keys):
            full = min(len(r.keys), r.target // self.bs)
            mine = self.kv.publish(r.keys[len(r.cached_hashes) : full])
            if mine:
                r.blocks -= len(mine)
                r.cached_hashes = r.cached_hashes + tuple(mine)
