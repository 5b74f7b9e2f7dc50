"""Builds the pools of a deployment, drives a workload through them and returns the raw arrays.

`run(cfg) -> RawRun` is the engine's one entry point. The cost model is reached only through
``cost.step.step_cost`` (injectable as ``step_fn`` for analytic tests) and ``cost.memory``
(KV capacity and the fit check: load_config validates structure and names, the cluster build
validates that the model fits each pool).

Cross-instance coupling goes through ``horizon(inst)``: the earliest time at which anything from
outside could reach an instance (the next arrival; in closed loop also another instance's next
completion plus think time; disaggregated pools add their hand-offs via ``horizon_sources``).
Fast-forwarding never runs past it, which keeps results identical to the plain loop.

An open-loop workload with ``max_concurrency`` N is benchmark_serving's --request-rate with
--max-concurrency: the one arrival process holds a request whose arrival time has come while N
are outstanding and sends it (in arrival order) when one finishes. Its ``arrival_s`` is the time
it is sent, as the client starts its clock after acquiring the semaphore.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from heapq import heappop, heappush
from typing import Any

import numpy as np
import simpy

from servesim.sim.admission import Admission
from servesim.sim.events import INF, NORMAL, at
from servesim.sim.instance import Instance
from servesim.sim.pools import POOLS, ColocatedPool, InstanceInfo, make_cost
from servesim.sim.records import RequestLog, RequestTable, StepLog, StepTable
from servesim.sim.request import Request
from servesim.specs.common import SpecError
from servesim.specs.config import RunConfig, rng_streams


class Abort(Exception):
    """Unwinds the SimPy run after an input error found mid-run."""


@dataclass
class RawRun:
    """What the engine produces (docs/internals.md, "sim (engine)")."""

    requests: RequestTable  # a dict of numpy columns (records.REQUEST_COLUMNS)
    steps: StepTable  # a dict of numpy columns (records.STEP_COLUMNS)
    instances: list[InstanceInfo]
    sim_end_s: float
    transfers: dict[str, np.ndarray] = field(default_factory=dict)
    issued: int = 0  # requests that arrived (== len(requests["request_id"]) when all finished)
    spec: dict = field(default_factory=dict)  # speculative decoding counters (sim/speculative.py)
    dropped: dict[str, int] = field(default_factory=dict)  # failed_<reason> -> count (admission)


def run(
    cfg: RunConfig,
    *,
    progress: Callable[..., Any] | None = None,
    step_fn: Callable[..., Any] | None = None,
    workload: Any = None,
    kv_blocks: int | None = None,
    step_hook: Callable[[Any], None] | None = None,
) -> RawRun:
    """Simulate ``cfg`` to completion.

    progress: called as progress(done, total) now and then (total None when unknown).
    step_fn: (CostContext, role, Aggregates) -> StepCost; default cost.step.step_cost.
    workload: an object like servesim.workload.Workload; default build(cfg.workload, cfg.seed).
    kv_blocks: KV blocks per instance (skips the memory model and its fit check; for tests).
    step_hook: called with the instance after every applied step (invariant tests).
    """
    return Cluster(
        cfg,
        progress=progress,
        step_fn=step_fn,
        workload=workload,
        kv_blocks=kv_blocks,
        step_hook=step_hook,
    ).run()


class Cluster:
    def __init__(
        self,
        cfg: RunConfig,
        *,
        progress=None,
        step_fn=None,
        workload=None,
        kv_blocks=None,
        step_hook=None,
    ):
        from servesim.cost import Aggregates, pool_context
        from servesim.sim.disagg import moe_imbalance_of

        self.cfg = cfg
        self.env = simpy.Environment()
        self.fast_forward = cfg.sim.fast_forward
        self.steps = StepLog(cfg.sim.step_log)
        self.reqs = RequestLog()
        self.step_hook = step_hook
        self.progress = progress
        self.horizon_sources: list[Callable[[Any], float]] = []
        rngs = rng_streams(cfg.seed)
        if step_fn is None:
            from servesim.cost import step_cost as step_fn

        self.pools = []
        first = 0
        classes = pool_classes(cfg.deployment.pools)
        for spec in cfg.deployment.pools:
            cls = classes.get(spec.role)
            if cls is None:
                raise SpecError(
                    cfg.source,
                    "deployment.pools",
                    spec.role,
                    "role not supported yet by the engine; use colocated",
                )
            ctx = pool_context(cfg, spec, moe_imbalance_of(cfg, spec))
            blocks = kv_blocks if kv_blocks is not None else _kv_blocks(ctx, spec, cfg.source)
            cost = make_cost(step_fn, ctx, spec.role, Aggregates)
            pool = cls(self, spec, first, cost, blocks, cfg.deployment.router, rngs["router"])
            if getattr(spec, "speculative", None) is not None:
                from servesim.sim.speculative import enable

                enable(pool, ctx, spec.speculative, step_fn, cfg.seed)
            first += len(pool.instances)
            self.pools.append(pool)
        # requests enter the pool that prefills them (a decode-only AF study starts at attention)
        by_role = {p.role: p for p in self.pools}
        self.entry = next(by_role[r] for r in ENTRY_ROLES if r in by_role)
        self.instances = [x for p in self.pools for x in p.instances]
        self.admission = Admission(cfg, self.pools)
        if workload is None:
            from servesim.workload import build

            workload = build(cfg.workload, cfg.seed)
        self.workload = workload
        self.total = getattr(workload, "num_requests", None)
        self.duration = getattr(workload, "duration_s", None)
        self.next_arrival = INF
        self.issued = 0
        self.done = 0
        self.rejected = 0
        self.every = max(1, (self.total or 10_000) // 100)
        self.clients = workload.closed_loop
        self.pending: list[float] = []  # closed loop: times of requests scheduled to arrive
        # open loop with a cap: the arrival process waits on ``slot`` (replaced after firing)
        # while ``cap`` requests are outstanding (issued - done)
        self.cap = getattr(workload, "max_concurrency", None) if self.clients is None else None
        self.slot: Any = None

    # -- driving -------------------------------------------------------------------------------
    def run(self) -> RawRun:
        env = self.env
        # an instance that meets the rest of the run only at arrivals may apply its steps inline
        # (steploop.py); closed-loop clients and a concurrency cap react to its completions
        inline = self.fast_forward and self.clients is None and self.cap is None
        for pool in self.pools:
            if inline and type(pool) is ColocatedPool:
                for inst in pool.instances:
                    inst.inline = type(inst) is Instance and inst.pipe is None
        if self.clients is None and self.cap is None and not self.horizon_sources:
            # only arrivals reach an instance from outside: its horizon is the next arrival
            for pool in self.pools:
                if getattr(type(pool), "horizon", None) is ColocatedPool.horizon:
                    pool.horizon = self._arrival_horizon
        for pool in self.pools:
            pool.start()
        if self.clients is None:
            env.process(self._arrivals(self.workload.open_loop()))
        else:
            n = (
                self.clients.concurrency
                if self.total is None
                else min(self.clients.concurrency, self.total)
            )
            for c in range(n):
                self._schedule_client(c, 0.0)
        try:
            env.run()
        except Abort:
            raise self.error from None
        if self.done != self.issued:
            raise RuntimeError(f"engine stopped with {self.issued - self.done} requests unfinished")
        if self.progress is not None:
            self.progress(self.done, self.total)
        info = [i for p in self.pools for i in p.info(self.cfg.dtypes)]
        transfers: dict[str, np.ndarray] = {}
        for pool in self.pools:
            if hasattr(pool, "transfers"):
                transfers = pool.transfers()
        steps = self.steps.arrays()
        spec: dict = {}
        if any(getattr(p.spec, "speculative", None) is not None for p in self.pools):
            from servesim.sim.speculative import collect

            spec = collect(self.pools, steps)
        return RawRun(
            self.reqs.arrays(),
            steps,
            info,
            env.now,
            transfers,
            self.issued,
            spec,
            self.admission.summary(),
        )

    def _arrivals(self, stream):
        env = self.env
        submit = self.entry.submit
        duration = self.duration
        cap = self.cap
        for spec in stream:
            t = spec.arrival_s
            if duration is not None and t >= duration:
                break
            if t > env.now:
                self.next_arrival = t
                yield at(env, t, NORMAL)
            if cap is not None:
                if self.issued - self.done >= cap:
                    # held: only a completion can send it, which horizon() accounts for
                    self.next_arrival = INF
                    while self.issued - self.done >= cap:
                        self.slot = env.event()
                        yield self.slot
                # the client's clock starts when the request is sent (a request that waited
                # behind a held one is sent later than its arrival time, too)
                t = env.now
            r = Request(
                self.issued,
                t,
                spec.prompt_tokens,
                spec.output_tokens,
                spec.session_id,
                spec.prefix_hashes,
                spec.priority,
                spec.ttft_slo_ms,
            )
            self.issued += 1
            if self._admit(r):
                submit(r)
        self.next_arrival = INF

    def _schedule_client(self, client: int, t: float) -> None:
        heappush(self.pending, t)
        ev = at(self.env, t, NORMAL)
        ev.callbacks.append(partial(self._issue, client))

    def _issue(self, client: int, _ev: Any) -> None:
        heappop(self.pending)
        spec = self.workload.next_lengths()
        r = Request(
            self.issued,
            self.env.now,
            spec.prompt_tokens,
            spec.output_tokens,
            spec.session_id,
            spec.prefix_hashes,
            spec.priority,
            spec.ttft_slo_ms,
        )
        r.client = client
        self.issued += 1
        if self._admit(r):
            self.entry.submit(r)
        else:
            self._client_next(client)

    def _admit(self, r: Request) -> bool:
        """The entry check (sim/admission.py): False = dropped, failed with its reason (counted
        as done, never simulated); a request past the run's caps fails the run."""
        try:
            ok = self.admission.admit(r, self.issued)
        except SpecError as err:
            self.fail(err)
        if not ok:
            self.done += 1
        return ok

    # -- what pools call -----------------------------------------------------------------------
    def fail(self, err: Exception) -> None:
        """Stop the run with ``err`` (SimPy re-creates exceptions from their args, so the
        original is kept here and re-raised by run())."""
        self.error = err
        raise Abort(str(err))

    def finish(self, r: Request) -> None:
        # the request's own finish time: inline-applied steps run ahead of the SimPy clock
        if r.finish_s > self.admission.max_time:
            try:
                self.admission.check_clock(r.finish_s)
            except SpecError as err:
                self.fail(err)
        self.reqs.add(r)
        self._done(r)

    def reject(self, r: Request) -> None:
        """``r`` was turned away at arrival (admission): issued, never served, not recorded."""
        self.rejected += 1
        self._done(r)

    def _done(self, r: Request) -> None:
        self.done += 1
        if self.progress is not None and self.done % self.every == 0:
            self.progress(self.done, self.total)
        if self.slot is not None:  # a held request goes now (the process resumes at now)
            self.slot.succeed()
            self.slot = None
            self.next_arrival = self.env.now
        if self.clients is not None and r.client >= 0:
            self._client_next(r.client)

    def _client_next(self, client: int) -> None:
        """A closed-loop client got its answer: it sends its next request after think time."""
        promised = self.issued + len(self.pending)
        t = self.env.now + self.clients.think_time_s
        if (self.total is None or promised < self.total) and (
            self.duration is None or t < self.duration
        ):
            self._schedule_client(client, t)

    def _arrival_horizon(self, inst: Any) -> float:
        """``horizon`` of an open-loop run without a concurrency cap or hand-offs."""
        return self.next_arrival

    def horizon(self, inst: Any) -> float:
        """Earliest time anything outside ``inst`` could change or observe it."""
        h = self.next_arrival
        if self.slot is not None:  # a held request goes at the next completion anywhere
            for other in self.instances:
                if other is not inst and other.busy_until < h:
                    h = other.busy_until
        if self.clients is not None:
            if self.pending:
                h = min(h, self.pending[0])
            think = self.clients.think_time_s
            for other in self.instances:
                if other is not inst and other.busy_until + think < h:
                    h = other.busy_until + think
        for source in self.horizon_sources:
            h = min(h, source(inst))
        return h


ENTRY_ROLES = ("colocated", "prefill", "attention", "decode")


def pool_classes(pools: Any) -> dict[str, type]:
    """Role -> pool class: the colocated pool here, the disaggregated ones (imported only when a
    deployment asks for them) from sim/disagg.py."""
    classes = dict(POOLS)
    if any(p.role not in classes for p in pools):
        from servesim.sim.disagg import DISAGG_POOLS

        classes.update(DISAGG_POOLS)
    return classes


def _kv_blocks(ctx: Any, spec: Any, where: str) -> int:
    """KV blocks of one instance from the memory model; the fit check raises a SpecError."""
    from servesim.cost import check_fit, kv_capacity_tokens

    s = spec.scheduler
    field_where = f"{where}: deployment pool {spec.role}" if where else spec.role
    check_fit(ctx, s.gpu_memory_utilization, spec.role, field_where, s.max_num_batched_tokens)
    if spec.role == "ffn":  # FFN/expert instances hold no KV
        return 0
    tokens = kv_capacity_tokens(ctx, s.gpu_memory_utilization, spec.role, s.max_num_batched_tokens)
    if getattr(spec, "speculative", None) is not None:  # the drafter's weights and KV
        from servesim.cost import spec_kv_capacity_tokens

        tokens = spec_kv_capacity_tokens(
            ctx, spec.speculative, s.gpu_memory_utilization, spec.role, s.max_num_batched_tokens
        )
    blocks = tokens // s.block_size
    if blocks < 1:
        raise SpecError(
            where,
            "deployment.pools",
            spec.role,
            f"no room for a single KV block of {s.block_size} tokens",
        )
    return blocks
