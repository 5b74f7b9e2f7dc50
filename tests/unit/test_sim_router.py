"""Routers pick from snapshots; ties go to the lowest index."""

from __future__ import annotations

from collections import deque

import numpy as np

from servesim.sim.kvcache import KVCache
from servesim.sim.router import ROUTERS, snapshots


class FakeInstance:
    def __init__(self, load):
        self.load = load
        self.waiting = deque()
        self.n_running = 0
        self.kv = KVCache(8)


class Req:
    def __init__(self, session_id=-1):
        self.session_id = session_id


def test_router_registry_names():
    assert set(ROUTERS) == {"round_robin", "least_loaded", "power_of_two", "random", "session"}


def test_router_least_loaded_picks_fewest_outstanding_tokens_ties_low_index():
    insts = [FakeInstance(5), FakeInstance(3), FakeInstance(3)]
    assert ROUTERS["least_loaded"](3, None).route(Req(), insts) == 1


def test_router_round_robin_cycles():
    rr = ROUTERS["round_robin"](3, None)
    assert [rr.route(Req(), []) for _ in range(5)] == [0, 1, 2, 0, 1]


def test_router_power_of_two_never_picks_the_worse_of_its_pair():
    insts = [FakeInstance(100), FakeInstance(0)]
    p2 = ROUTERS["power_of_two"](2, np.random.default_rng(0))
    assert all(p2.route(Req(), insts) == 1 for _ in range(10))


def test_router_random_is_seeded():
    a = ROUTERS["random"](4, np.random.default_rng(1))
    b = ROUTERS["random"](4, np.random.default_rng(1))
    assert [a.route(Req(), []) for _ in range(20)] == [b.route(Req(), []) for _ in range(20)]


def test_router_session_sticks_to_first_choice():
    insts = [FakeInstance(0), FakeInstance(10)]
    s = ROUTERS["session"](2, None)
    assert s.route(Req(7), insts) == 0
    insts[0].load = 1000
    assert s.route(Req(7), insts) == 0
    assert s.route(Req(8), insts) == 1


def test_router_snapshots_are_plain_values():
    snap = snapshots([FakeInstance(4)])
    assert snap[0].load_tokens == 4 and snap[0].kv_free_blocks == 8


def test_router_and_scheduler_registries_match_config_choices():
    from servesim.sim.batching import SCHEDULERS
    from servesim.specs.config import POLICIES
    from servesim.specs.config import ROUTERS as CONFIG_ROUTERS

    assert set(SCHEDULERS) == set(POLICIES)
    assert set(ROUTERS) == set(CONFIG_ROUTERS)
