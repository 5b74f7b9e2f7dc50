"""Global routing across the instances of a pool. Routers see snapshots only.

A snapshot is a read-only view of one instance at the arrival time: outstanding tokens (prefill
still to compute plus output still to emit), waiting and running counts and free KV blocks.
Ties go to the lowest instance index.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from servesim.specs.config import ROUTERS as ROUTER_NAMES


class Snapshot(NamedTuple):
    index: int
    load_tokens: int
    waiting: int
    running: int
    kv_free_blocks: int


def snapshots(instances: list) -> list[Snapshot]:
    return [
        Snapshot(i, x.load, len(x.waiting), x.n_running, x.kv.available)
        for i, x in enumerate(instances)
    ]


class RoundRobin:
    name = "round_robin"

    def __init__(self, n: int, rng: Any):
        self.n = n
        self.next = 0

    def route(self, req: Any, instances: list) -> int:
        i = self.next
        self.next = (i + 1) % self.n
        return i


class LeastLoaded:
    """Fewest outstanding tokens (what llm-d / Dynamo approximate with queue and KV signals)."""

    name = "least_loaded"

    def __init__(self, n: int, rng: Any):
        self.n = n

    def route(self, req: Any, instances: list) -> int:
        best, best_load = 0, None
        for s in snapshots(instances):
            if best_load is None or s.load_tokens < best_load:
                best, best_load = s.index, s.load_tokens
        return best


class PowerOfTwo:
    """Two distinct instances drawn at random; the one with fewer outstanding tokens wins."""

    name = "power_of_two"

    def __init__(self, n: int, rng: Any):
        self.n = n
        self.rng = rng

    def route(self, req: Any, instances: list) -> int:
        if self.n == 1:
            return 0
        a, b = (int(x) for x in self.rng.choice(self.n, size=2, replace=False))
        snap = snapshots(instances)
        la, lb = snap[a].load_tokens, snap[b].load_tokens
        return a if (la, a) <= (lb, b) else b


class RandomRouter:
    name = "random"

    def __init__(self, n: int, rng: Any):
        self.n = n
        self.rng = rng

    def route(self, req: Any, instances: list) -> int:
        return int(self.rng.integers(self.n))


class SessionAffinity:
    """Requests of one session stick to the instance its first request went to (least loaded);
    requests without a session are routed least-loaded."""

    name = "session"

    def __init__(self, n: int, rng: Any):
        self.fallback = LeastLoaded(n, rng)
        self.home: dict[int, int] = {}

    def route(self, req: Any, instances: list) -> int:
        sid = req.session_id
        if sid < 0:
            return self.fallback.route(req, instances)
        home = self.home.get(sid)
        if home is None:
            home = self.home[sid] = self.fallback.route(req, instances)
        return home


ROUTERS: dict[str, type] = {
    "round_robin": RoundRobin,
    "least_loaded": LeastLoaded,
    "power_of_two": PowerOfTwo,
    "random": RandomRouter,
    "session": SessionAffinity,
}
assert tuple(ROUTERS) == ROUTER_NAMES, "specs.config.ROUTERS is the one list of router names"
