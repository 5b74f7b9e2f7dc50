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
from servesim.sim.instance import Instance, Pipeline
from servesim.sim.kvcache import KVCache
from servesim.sim.queues import ttft_target_s
from servesim.sim.router import ROUTERS
from servesim.specs.common import SpecError


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
    # the model replica this instance belongs to: the id of its first instance; with pp > 1 the
    # pp virtual engines of one replica share it (each holds devices = tp x dp_attn of the
    # replica's tp x pp x dp_attn); == instance_id when pp = 1
    replica: int = -1


def make_cost(step_fn: Any, ctx: Any, role: str, aggregates: Any) -> Any:
    """agg tuple -> StepCost, memoised locally for a given ``step_fn`` (bounded).

    For the default ``step_cost`` the engine takes ``cost.bind_step_cost``'s hot path instead (no
    Aggregates built, no plan look-up, no memo per call; bound at the first step). The function
    returned has a ``decode`` attribute: ``decode(n)`` -> a function of the decode context for
    decode-only steps of n sequences, giving the same StepCost as
    ``cost((0, 0, 0, 0, n, decode_ctx, n))`` (the step loop's fast-forward checks that its
    seconds are positive).
    """
    from servesim.cost import bind_step_cost, step_cost

    bind = bind_step_cost if step_fn is step_cost else None
    memo: dict = {}
    fast: Any = None  # the bound decode(n), once bound

    def general(agg: tuple) -> Any:
        return step_fn(ctx, role, aggregates(*agg))

    def first(agg: tuple) -> Any:
        nonlocal inner, fast
        inner, fast = bind(ctx, role)
        return inner(agg)

    inner = general if bind is None else first

    def memoised(agg: tuple) -> Any:
        c = memo.get(agg)
        if c is None:
            if len(memo) >= 65_536:
                memo.clear()
            c = inner(agg)
            if not c.seconds > 0:
                raise ValueError(f"step cost must be positive, got {c.seconds!r} for {agg}")
            memo[agg] = c
        return c

    def bound(agg: tuple) -> Any:
        # no memo: a step's aggregates almost never repeat (0.5 % on the Azure conv trace), and
        # the bound cost is cheaper than the memo's upkeep
        c = inner(agg)
        if not c[0] > 0:
            raise ValueError(f"step cost must be positive, got {c[0]!r} for {agg}")
        return c

    cost = memoised if bind is None else bound

    def decode(n: int) -> Any:
        nonlocal inner, fast
        if bind is not None and fast is None:
            inner, fast = bind(ctx, role)
        fn = fast(n) if fast is not None else None
        if fn is None:
            return lambda dc: cost((0, 0, 0, 0, n, dc, n))
        return fn

    cost.decode = decode  # type: ignore[attr-defined]
    return cost


class ColocatedPool:
    """Replicas that each prefill and decode their own requests.

    A replica with pp > 1 pipeline stages is ``pp`` virtual engines (instances with their own
    scheduler, 1/pp of the replica's KV blocks and of max_num_seqs) whose batches share the
    replica's stages (instance.Pipeline), as vLLM V0's virtual engines do.
    """

    role = "colocated"
    instance_class = Instance
    pipelined = True  # pp > 1 runs virtual engines; False: one batch through all stages

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
        ve = spec.parallelism.pp if self.pipelined else 1
        self.ve = ve
        blocks, seqs = _engine_share(cluster.cfg.source, spec, kv_blocks, ve)
        layers = cluster.cfg.model.num_layers
        self.instances = []
        for i in range(spec.instances):
            pipe = Pipeline(layers, ve) if ve > 1 else None
            for v in range(ve):
                kv = KVCache(blocks, s.block_size, s.enable_prefix_caching)
                inst = self.instance_class(
                    first_id + i * ve + v,
                    cluster.env,
                    kv,
                    SCHEDULERS[s.policy](),
                    self.instance_cost(cost),
                    self,
                    max_num_seqs=seqs,
                    max_num_batched_tokens=s.max_num_batched_tokens,
                    reserve_output=self.reserves_output(s),
                    fast_forward=cluster.fast_forward,
                    pipeline=pipe,
                    queue=s.queue,
                    admission=s.admission,
                    ttft_target_s=ttft_target_s(cluster.cfg.slo),
                )
                self.instances.append(inst)
        # routing order: the first virtual engine of every replica, then the second, ... so that
        # round robin and the routers' lowest-index tie rule spread load over replicas first
        n = spec.instances
        self.targets = [self.instances[i * ve + v] for v in range(ve) for i in range(n)]
        self.router = ROUTERS[router](len(self.targets), rng)
        self.log = self.step_log()
        # how steploop.fast_forward writes a run's rows when they go to the cluster's step log:
        # directly with its packers ("full"), or merged at once ("runs")
        steps = cluster.steps
        own = self.log is steps.log
        self.decode_rows = getattr(steps.log, "rows", None) if own else None
        self.decode_run = steps.log_decode_run if own and steps.mode != "full" else None
        self.step_hook = cluster.step_hook

    # -- what a role composes differently ----------------------------------------------------
    def instance_cost(self, cost: Any) -> Any:
        """The step-cost function its instances call (agg tuple -> StepCost)."""
        return cost

    def step_log(self) -> Any:
        """Where its instances' steps are logged (records.StepLog.log's signature)."""
        return self.cluster.steps.log

    def reserves_output(self, s: Any) -> bool:
        """Whether admission reserves KV for the whole output (static batching never preempts)."""
        return s.reserve_output or s.policy == "static"

    def start(self) -> None:
        env = self.cluster.env
        for inst in self.instances:
            inst.wake = env.event()
            env.process(inst.process())

    def submit(self, r: Any) -> None:
        insts = self.targets
        i = 0 if len(insts) == 1 else self.router.route(r, insts)
        insts[i].enqueue(r)

    # -- the sink its instances report to ------------------------------------------------------
    def finish(self, r: Any) -> None:
        self.cluster.finish(r)

    def fail(self, err: Exception) -> None:
        self.cluster.fail(err)

    def reject(self, r: Any) -> None:
        self.cluster.reject(r)

    def horizon(self, inst: Any) -> float:
        return self.cluster.horizon(inst)

    def info(self, dtypes: Any) -> list[InstanceInfo]:
        hw = self.spec.hardware
        ve = getattr(self, "ve", 1)
        dev = self.spec.parallelism.devices // ve  # a virtual engine's share of its replica's
        peak = hw.peak_flops(dtypes.compute)
        first = self.instances[0].id if self.instances else 0
        return [
            InstanceInfo(
                x.id,
                self.name,
                self.role,
                hw.name,
                dev,
                peak,
                hw.memory_bw,
                hw.tdp_W,
                hw.idle_W,
                first + (k // ve) * ve,
            )
            for k, x in enumerate(self.instances)
        ]


def _engine_share(where: str, spec: Any, kv_blocks: int, ve: int) -> tuple[int, int | None]:
    """KV blocks and max_num_seqs of one of a replica's ``ve`` virtual engines: 1/ve of each,
    rounded down (vLLM V0 divides the KV blocks so; max_num_seqs is split so that the replica's
    running requests stay within it), max_num_seqs at least 1."""
    seqs = spec.scheduler.max_num_seqs
    if ve == 1:
        return kv_blocks, seqs
    blocks = kv_blocks // ve
    if blocks < 1:
        raise SpecError(
            where,
            "deployment.pools",
            spec.role,
            f"{kv_blocks} KV blocks cannot be shared by {ve} pipeline virtual engines",
        )
    return blocks, None if seqs is None else max(1, seqs // ve)


# role -> pool class. Roles missing here are rejected by the cluster ("not supported yet").
POOLS: dict[str, type] = {"colocated": ColocatedPool}
