"""The one module that touches SimPy's internals.

SimPy's public ``Timeout`` adds a delay to ``now``; the engine needs events at absolute times
(so that the clock stays bit-identical whether steps are fast-forwarded or not) and a cheap way
to make one per step. Both need ``env._queue`` and ``env._eid``; nothing else in servesim does.
Step ends are URGENT and arrivals NORMAL, so at equal times every step end is handled before an
arrival (a fixed tie rule).
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heappush
from typing import Any

from simpy.events import NORMAL, URGENT, Event

INF = float("inf")


def at(env: Any, t: float, priority: int = URGENT) -> Event:
    """An event that fires at absolute time ``t``."""
    ev = Event(env)
    ev._ok = True
    ev._value = None
    heappush(env._queue, (t, priority, next(env._eid), ev))
    return ev


def step_timer(env: Any) -> Callable[[float], Event]:
    """``fire(t)``: an URGENT event at absolute time ``t``, for an instance's step loop (the hot
    path: ``at`` with its lookups hoisted)."""
    queue = env._queue
    eid = env._eid

    def fire(t: float) -> Event:
        ev = Event(env)
        ev._ok = True
        ev._value = None
        heappush(queue, (t, URGENT, next(eid), ev))
        return ev

    return fire


__all__ = ["INF", "NORMAL", "URGENT", "at", "step_timer"]
