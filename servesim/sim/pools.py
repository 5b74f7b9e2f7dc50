"""Pools: the instances of one role plus the router that spreads requests over them.

A pool is the unit the cluster wires together. The colocated pool runs whole requests. Other
roles (prefill, decode, attention, ffn) are new Pool subclasses registered in POOLS: a prefill
pool's instances hand a request to the cluster after its prefill (``handoff``) instead of
decoding it, and the cluster moves it over a link to the next pool's ``submit``. None of that
touches the instance's hot loop.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from servesim.sim.batching import SCHEDULERS
from servesim.sim.instance import Instance
from servesim.sim.kvcache import KVCache
from servesim.sim.router import ROUTERS


class InstanceInfo(NamedTuple):
    instance_id: int
    pool: str
    role: str
    hardware: str
    devices: int
    peak_flops: float  # per device, FLOP/s in the compute dtype
    mem_bw: float  # per device, bytes/s
    tdp_W: float  # per device
    idle_W: float  # per device


def make_cost(step_fn: Any, ctx: Any, role: str, aggregates: Any) -> Any:
    """agg tuple -> StepCost, memoised locally (bounded: decode contexts rarely repeat)."""
    memo: dict = {}

    def cost(agg: tuple) -> Any:
        c = memo.get(agg)
        if c is None:
            if len(memo) >= 65_536:
                memo.clear()
            c = step_fn(ctx, role, aggregates(*agg))
            if not c.seconds > 0:
                raise ValueError(f"step cost must be positive, got {c.seconds!r} for {agg}")
            memo[agg] = c
        return c

    return cost


class ColocatedPool:
    """Replicas that each prefill and decode their own requests."""

    role = "colocated"
    instance_class = Instance

    def __init__(
        self,
        cluster: Any,
        spec: Any,
        first_id: int,
        cost: Any,
        kv_blocks: int,
        router: str,
        rng: Any,
    ):
        self.cluster = cluster
        self.spec = spec
        self.name = spec.role
        s = spec.scheduler
        self.instances = []
        for i in range(spec.instances):
            kv = KVCache(kv_blocks, s.block_size, s.enable_prefix_caching)
            inst = self.instance_class(
                first_id + i,
                cluster.env,
                kv,
                SCHEDULERS[s.policy](),
                cost,
                self,
                max_num_seqs=s.max_num_seqs,
                max_num_batched_tokens=s.max_num_batched_tokens,
                reserve_output=s.reserve_output or s.policy == "static",  # static never preempts
                fast_forward=cluster.fast_forward,
            )
            self.instances.append(inst)
        self.router = ROUTERS[router](len(self.instances), rng)
        self.log = cluster.steps.log
        self.step_hook = cluster.step_hook

    def start(self) -> None:
        env = self.cluster.env
        for inst in self.instances:
            inst.wake = env.event()
            env.process(inst.process())

    def submit(self, r: Any) -> None:
        insts = self.instances
        i = 0 if len(insts) == 1 else self.router.route(r, insts)
        insts[i].enqueue(r)

    # -- the sink its instances report to ------------------------------------------------------
    def finish(self, r: Any) -> None:
        self.cluster.finish(r)

    def fail(self, err: Exception) -> None:
        self.cluster.fail(err)

    def horizon(self, inst: Any) -> float:
        return self.cluster.horizon(inst)

    def info(self, dtypes: Any) -> list[InstanceInfo]:
        hw = self.spec.hardware
        dev = self.spec.parallelism.devices
        peak = hw.peak_flops(dtypes.compute)
        return [
            InstanceInfo(
                x.id, self.name, self.role, hw.name, dev, peak, hw.memory_bw, hw.tdp_W, hw.idle_W
            )
            for x in self.instances
        ]


# role -> pool class. Roles missing here are rejected by the cluster ("not supported yet").
POOLS: dict[str, type] = {"colocated": ColocatedPool}
