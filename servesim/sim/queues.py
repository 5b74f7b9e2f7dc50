"""Waiting-queue orders: which admissible request a scheduler sees first.

A queue has the deque operations the engine uses: ``append`` (a new request), ``appendleft`` (a
preempted one going back), ``popleft`` and ``[0]`` (the head), ``len`` and iteration.

- ``fifo``: arrival order; a preempted request goes back to the front (vLLM's default ``fcfs``).
- ``priority``: lowest ``priority`` value first, then arrival, then request id (vLLM's
  ``--scheduling-policy priority`` orders its waiting queue by (priority, arrival) the same way);
  a preempted request re-enters at its place in that order.
"""

from __future__ import annotations

from collections import deque
from heapq import heappop, heappush
from typing import Any

from servesim.specs.config import QUEUE_ORDERS


class FifoQueue(deque):
    __slots__ = ()
    name = "fifo"


class PriorityQueue:
    __slots__ = ("heap",)
    name = "priority"

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


QUEUES: dict[str, type] = {c.name: c for c in (FifoQueue, PriorityQueue)}
assert tuple(QUEUES) == QUEUE_ORDERS, "specs.config.QUEUE_ORDERS names every queue order once"


def make_queue(order: str) -> Any:
    return QUEUES[order]()
