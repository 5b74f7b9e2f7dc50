"""The decode set of one instance: its running decodes, tracked in aggregate.

A step costs O(1) Python work in the number of decoding requests:

- ``clock`` counts the instance's decode iterations; a request that joined at clock ``join``
  with ``ctx0`` tokens in KV holds ``ctx0 + clock - join`` tokens now;
- ``dsum`` is the sum of those contexts, so a step's decode_ctx is ``dsum + n``;
- a request needs a new KV block on the iterations where its context is a multiple of the block
  size, i.e. when ``clock % bs == (join - ctx0) % bs``: ``buckets`` counts requests per phase,
  so a step's KV growth is one lookup (requests with reserved KV are not counted);
- ``alloc_clock``: the decode clock up to which the set's KV blocks are allocated;
- completions come off a heap keyed by the clock at which the last token is emitted (entries of
  requests that left early are skipped: ``r.seq`` and ``r.state`` tell).
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heappop, heappush

from servesim.sim.request import DECODE, Request


class DecodeSet:
    __slots__ = ("bs", "blocks_for", "members", "n", "dsum", "clock", "alloc_clock", "buckets",
                 "heap")  # fmt: skip

    def __init__(self, block_size: int, blocks_for: Callable[[int], int]):
        self.bs = block_size
        self.blocks_for = blocks_for
        self.members: dict[int, Request] = {}  # seq -> request
        self.n = 0
        self.dsum = 0
        self.clock = 0
        self.alloc_clock = 0
        self.buckets = [0] * block_size
        self.heap: list = []  # (finish clock, seq, request)

    def blocks_needed(self) -> int:
        """New KV blocks the set needs for its next iteration (0 when already allocated)."""
        return self.buckets[self.clock % self.bs] if self.alloc_clock == self.clock else 0

    def newest_seq(self) -> int:
        return max(self.members) if self.members else -1

    def join(self, r: Request) -> None:
        """``r`` (its prefill done, ``r.target`` tokens in KV) decodes from the next iteration."""
        r.state = DECODE
        r.join = self.clock
        r.ctx0 = r.target
        self.members[r.seq] = r
        self.n += 1
        self.dsum += r.target
        if not r.reserved:
            self.buckets[(r.join - r.ctx0) % self.bs] += 1
        # the last token is emitted on the iteration that brings the clock to join + remaining
        heappush(self.heap, (self.clock + r.output - r.generated, r.seq, r))

    def leave(self, r: Request) -> None:
        """Remove ``r``, bringing its counters (generated tokens, private blocks) up to date."""
        del self.members[r.seq]
        steps = self.clock - r.join
        self.n -= 1
        self.dsum -= r.ctx0 + steps
        if not r.reserved:
            self.buckets[(r.join - r.ctx0) % self.bs] -= 1
            r.blocks = self.blocks_for(r.ctx0 + self.alloc_clock - r.join) - len(r.cached_hashes)
        r.generated += steps
        if not self.n:
            # the next iteration's blocks went with the last decoding request; a request that
            # joins later must have its own growth allocated (a prefill preempting the whole
            # decode set after grow_decodes, e.g. a recompute older than a landed PD request)
            self.alloc_clock = self.clock

    def advance(self) -> list[Request]:
        """Apply one iteration (every member emits a token); the requests whose last token it
        was, in finishing order (they are still members: the caller removes them)."""
        n = self.n
        self.clock += 1
        self.dsum += n
        self.alloc_clock = self.clock
        heap = self.heap
        clock = self.clock
        done = []
        while heap and heap[0][0] <= clock:
            _, seq, r = heappop(heap)
            if r.state == DECODE and r.seq == seq:
                done.append(r)
        return done

    def first_finish(self) -> int:
        """The clock of the next completion (stale heap entries dropped); a huge number if none."""
        heap = self.heap
        while heap and (heap[0][2].state != DECODE or heap[0][2].seq != heap[0][1]):
            heappop(heap)
        return heap[0][0] if heap else 1 << 62
