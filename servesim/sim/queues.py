"""Waiting-queue orders: which admissible request a scheduler sees first.

A queue has the deque operations the engine uses: ``append`` (a new request), ``appendleft`` (a
preempted one going back), ``popleft`` and ``[0]`` (the head), ``len`` and iteration.

- ``fifo``: arrival order; a preempted request goes back to the front (vLLM's default ``fcfs``).
- ``priority``: lowest ``priority`` value first, then arrival, then request id (vLLM's
  ``--scheduling-policy priority`` orders its waiting queue by (priority, arrival) the same way);
  a preempted request re-enters at its place in that order.
- ``slo``: earliest TTFT deadline first, deadline = arrival + the request's TTFT target (its own
  ``ttft_slo_ms`` from the workload when given, else the tightest ``slo.ttft_ms`` of the config);
  ties by arrival, then id. A request whose deadline has passed while it waits (its first token
  can no longer come in time) moves behind every request that can still make its deadline, so an
  overload spends the instance on requests it can still serve in time instead of on ones already
  lost (earliest-deadline-first with late jobs demoted). A preempted request that already emitted
  its first token goes back to the front, as under FIFO (its TTFT is settled; holding it back
  would only stretch its TPOT).

Only ``slo`` depends on the clock (the instance's ``now``, when the next batch is formed), so it
is the one order whose head can change between arrivals; the step loop's decode fast-forward
assumes a fixed head, so an instance with the ``slo`` order steps one iteration at a time
while a request waits (``ff_safe = False``; with none waiting it may fast-forward: Instance.ff_idle).
"""

from __future__ import annotations

from collections import deque
from heapq import heappop, heappush
from typing import Any

from servesim.specs.config import QUEUE_ORDERS

INF = float("inf")


class FifoQueue(deque):
    __slots__ = ()
    name = "fifo"
    ff_safe = True


class PriorityQueue:
    __slots__ = ("heap",)
    name = "priority"
    ff_safe = True

    def __init__(self) -> None:
        self.heap: list = []

    def append(self, r: Any) -> None:
        heappush(self.heap, (r.priority, r.arrival_s, r.id, r))

    appendleft = append  # a preempted request re-enters at its place in the order

    def popleft(self) -> Any:
        return heappop(self.heap)[3]

    def __getitem__(self, i: int) -> Any:
        if i != 0:
            raise IndexError("a priority queue shows its head only")
        return self.heap[0][3]

    def __len__(self) -> int:
        return len(self.heap)

    def __bool__(self) -> bool:
        return bool(self.heap)

    def __iter__(self):
        return (e[3] for e in sorted(self.heap))


class SloQueue:
    """Earliest TTFT deadline first; requests past their deadline wait behind the rest."""

    __slots__ = ("clock", "ttft_s", "resume", "ontime", "late")
    name = "slo"
    ff_safe = False

    def __init__(self, clock: Any, ttft_s: float) -> None:
        self.clock = clock  # has ``now``: the time the next batch is formed at
        self.ttft_s = ttft_s  # the config's target, for requests without their own
        self.resume: deque = deque()  # preempted after their first token: served first
        self.ontime: list = []  # (deadline, arrival, id, request), deadline still ahead
        self.late: list = []  # the same, deadline passed while waiting

    def deadline(self, r: Any) -> float:
        own = r.ttft_slo_ms
        return r.arrival_s + (self.ttft_s if own is None else own / 1e3)

    def append(self, r: Any) -> None:
        heappush(self.ontime, (self.deadline(r), r.arrival_s, r.id, r))

    def appendleft(self, r: Any) -> None:
        if r.first_token_s >= 0:
            self.resume.appendleft(r)
        else:
            self.append(r)

    def _demote(self) -> None:
        """Move every request whose first token can no longer be in time behind the others (a
        token comes at the end of a step that starts at ``now`` at the earliest)."""
        ontime, now = self.ontime, self.clock.now
        while ontime and ontime[0][0] <= now:
            heappush(self.late, heappop(ontime))

    def popleft(self) -> Any:
        if self.resume:
            return self.resume.popleft()
        self._demote()
        return heappop(self.ontime if self.ontime else self.late)[3]

    def __getitem__(self, i: int) -> Any:
        if i != 0:
            raise IndexError("an slo queue shows its head only")
        if self.resume:
            return self.resume[0]
        self._demote()
        heap = self.ontime if self.ontime else self.late
        if not heap:
            raise IndexError("empty queue")
        return heap[0][3]

    def __len__(self) -> int:
        return len(self.resume) + len(self.ontime) + len(self.late)

    def __bool__(self) -> bool:
        return bool(self.resume or self.ontime or self.late)

    def __iter__(self):
        self._demote()
        yield from self.resume
        for heap in (self.ontime, self.late):
            yield from (e[3] for e in sorted(heap))


QUEUES: dict[str, type] = {c.name: c for c in (FifoQueue, PriorityQueue, SloQueue)}
assert tuple(QUEUES) == QUEUE_ORDERS, "specs.config.QUEUE_ORDERS names every queue order once"


def make_queue(order: str, clock: Any = None, ttft_s: float = INF) -> Any:
    """A waiting queue; ``clock`` (an object with ``now``) and ``ttft_s`` (the config's TTFT
    target, seconds) are read by the ``slo`` order only."""
    if order == "slo":
        return SloQueue(clock, ttft_s)
    return QUEUES[order]()


def ttft_target_s(slo: Any) -> float:
    """The config's TTFT target for the ``slo`` order: the tightest ``slo.ttft_ms`` value (a
    request that meets it meets every TTFT percentile target), in seconds; inf when none."""
    values = [v for _, v in getattr(slo, "ttft_ms", ()) or ()]
    return min(values) / 1e3 if values else INF
