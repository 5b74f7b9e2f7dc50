"""One model replica on its devices: its queues, decode set and KV, and the primitives its
scheduler may call. The SimPy process that runs it is in steploop.py.

Parts (each its own module): the waiting queue (queues.py: FIFO or priority), the decode set
(decodeset.py: running decodes in aggregate, O(1) per step), the KV manager (kvmanager.py:
check-then-act block accounting over kvcache.py), the step loop (steploop.py) and the SimPy
internals (events.py). Roles differ by composition: a pool gives its instances their cost
function, step log and KV reservation rule, and an instance may have an ``intake`` (a function
run before each scheduling decision: the decode side of a PD split admits landed requests there).

Pipeline parallelism: a replica with pp stages runs pp instances ("virtual engines", as vLLM V0
does), each with its own scheduler and one batch in flight; their batches share the replica's
stages through a ``Pipeline`` (docs/engine.md, "Pipeline parallelism").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from servesim.sim.decodeset import DecodeSet
from servesim.sim.events import INF, NORMAL, URGENT, at
from servesim.sim.kvcache import KVCache
from servesim.sim.kvmanager import KVManager
from servesim.sim.oversized import POLICIES as ADMISSION
from servesim.sim.queues import make_queue
from servesim.sim.request import DONE, PREFILL, WAITING, Request
from servesim.specs.common import SpecError


class Pipeline:
    """The stages of one replica, shared by its virtual engines: each stage works on one batch at
    a time and batches pass the stages in the order they enter (a flow shop).

    The cost model returns a batch's pipeline latency S (the sum of its stage times); stage s takes
    the share of S of its layers (layers split as evenly as possible, the first stages taking the
    remainder), so S is the latency of a batch that meets no other and the slowest stage bounds
    the throughput. Stage k of a batch starts when its stage k - 1 ends and stage k is free.
    """

    __slots__ = ("cum", "free")

    def __init__(self, layers: int, pp: int):
        base, extra = divmod(layers, pp)
        cum, n = [], 0
        for k in range(pp):
            n += base + (k < extra)
            cum.append(n / layers)
        cum[-1] = 1.0  # an unobstructed batch ends exactly S after it enters
        self.cum = cum
        self.free = [0.0] * pp  # when each stage is done with the batches already in

    def enter(self, now: float, seconds: float) -> tuple[float, float]:
        """(start, end) of a batch of pipeline latency ``seconds`` ready at ``now``; reserves
        the stages. Times are taken from the last wait (base, cb) so that a batch that never
        waits ends at exactly start + seconds."""
        free = self.free
        base, cb = now, 0.0
        t = now
        prev = 0.0
        for k, c in enumerate(self.cum):
            if free[k] > t:
                base, cb = free[k], prev
            t = base + seconds * (c - cb)
            free[k] = t
            prev = c
            if k == 0:
                start = base
        return start, t


class Batch:
    """A scheduler's answer for one iteration: what it scheduled (prefill chunks, and whether the
    decode set runs) and how many requests it preempted to make room."""

    __slots__ = ("chunks", "decode", "preempted")

    def __init__(self, chunks: list, decode: bool, preempted: int):
        self.chunks = chunks  # [(request, tokens)]
        self.decode = decode  # every request of the decode set emits one token
        self.preempted = preempted  # requests preempted while forming it


BatchResult = Batch  # the name schedulers are documented with


class Instance:
    """State of one instance plus the primitives its scheduler policy may call (the
    ``batching.BatchContext`` protocol)."""

    def __init__(
        self,
        iid: int,
        env: Any,
        kv: KVCache,
        scheduler: Any,
        cost: Any,
        sink: Any,
        *,
        max_num_seqs: int | None,
        max_num_batched_tokens: int,
        reserve_output: bool = False,
        fast_forward: bool = True,
        pipeline: Pipeline | None = None,
        queue: str = "fifo",
        admission: str = "all",
        ttft_target_s: float = float("inf"),
    ):
        self.id = iid
        self.env = env
        self.kv = kv
        self.kvm = KVManager(kv, reserve_output)
        self.sched = scheduler
        self.cost = cost  # agg tuple -> StepCost (memoised)
        self.sink = sink  # pool side: finish(), log(), horizon(), fail()
        self.max_seqs = max_num_seqs
        self.max_tokens = max_num_batched_tokens
        self.reserve = reserve_output
        # virtual engines of a pipeline couple through its stages at every step: no fast-forward
        self.ff = fast_forward and getattr(scheduler, "ff_safe", False) and pipeline is None
        self.pipe = pipeline
        self.bs = kv.block_size
        self.waiting = make_queue(queue, self, ttft_target_s)
        # the slo order's head moves with the clock: no fast-forward while a request waits (with
        # nothing waiting the order decides nothing, and a run stops at the next arrival)
        self.ff_idle = self.ff
        self.ff = self.ff and self.waiting.ff_safe
        self.admission = ADMISSION[admission]
        self.prefilling: list[Request] = []
        self.dec = DecodeSet(self.bs, kv.blocks_for)
        self.intake: Callable[[], None] | None = None  # run before each scheduling decision
        self.inline = False  # steps applied without SimPy events up to the horizon (steploop)
        self.now = 0.0  # the time the next batch is formed at (the step loop keeps it)
        self.next_seq = 0
        self.load = 0  # outstanding tokens: prefill still to compute + output still to emit
        self.busy_until = INF
        self.idle = True
        self.wake: Any = None
        self.steps = 0
        self.ff_steps = 0  # iterations applied inside fast-forward runs
        self.held = 0  # requests whose KV stays here until a transfer ends (PD prefill)

    # -- snapshots (routers, schedulers, step log) ---------------------------------------------
    @property
    def n_dec(self) -> int:
        return self.dec.n

    @property
    def n_running(self) -> int:
        return len(self.prefilling) + self.dec.n

    # -- arrivals ------------------------------------------------------------------------------
    def enqueue(self, r: Request) -> None:
        if not self.check_request(r, r.prompt + r.output - 1, "instance", "max_input/max_output"):
            return
        r.instance = self.id
        self.queue(r, r.prompt + r.output)

    def check_request(self, r: Request, kv_tokens: int, kind: str, clip: str) -> bool:
        """Whether this instance can ever serve ``r``; if not, a malformed request fails the run
        (one SpecError) and one that can never fit goes to the admission policy."""
        if r.prompt < 1 or r.output < 1:
            self.sink.fail(
                SpecError(
                    "workload",
                    "request",
                    f"#{r.id}: {r.prompt} prompt, {r.output} output tokens",
                    "every request needs >= 1 prompt and >= 1 output token",
                )
            )
        need = self.kv.blocks_for(kv_tokens)
        if need > self.kv.total:
            err = SpecError(
                "workload",
                "request",
                f"#{r.id}: {r.prompt} prompt + {r.output} output tokens",
                f"needs {need} KV blocks, more than {kind} {self.id} has ({self.kv.total}); "
                f"clip lengths (trace {clip}), add memory or set scheduler.admission: "
                "reject_oversized",
            )
            self.admission.oversized(self, r, err)
            return False
        return True

    def queue(self, r: Request, load: int) -> None:
        """Add an admissible request to the waiting queue and wake the process if idle."""
        self.waiting.append(r)
        self.load += load
        self.wake_up()

    def wake_up(self) -> None:
        if self.idle:
            self.idle = False
            self.wake.succeed()

    # -- primitives for schedulers (batching.BatchContext) -------------------------------------
    def decode_blocks_needed(self) -> int:
        """New KV blocks the decode set needs for the next iteration."""
        return self.dec.blocks_needed()

    def grow_decodes(self) -> int:
        """Allocate the decode set's blocks for the next iteration, preempting newest-first."""
        dec = self.dec
        kv = self.kv
        need = dec.blocks_needed()
        if need <= kv.free and dec.n:  # the common case, as below: no preemption, no eviction
            kv.free -= need
            kv.private += need
            dec.alloc_clock = dec.clock + 1
            return 0
        preempted = 0
        while need > self.kv.available and dec.n:
            self.preempt_newest()
            preempted += 1
            need = dec.blocks_needed()
        if dec.n:
            self.kvm.allocate(None, need)
            dec.alloc_clock = dec.clock + 1
        return preempted

    def grow_prefill(self, r: Request, c: int) -> tuple[bool, int]:
        """KV for ``c`` more prefill tokens of running ``r``; preempts newest-first.

        Returns (scheduled, preempted); not scheduled when ``r`` itself was the newest.
        """
        kvm = self.kvm
        kv = self.kv
        need = kv.blocks_for(r.computed + c) - len(r.cached_hashes) - r.blocks  # prefill_growth
        if need <= 0:  # reserved at admission
            return True, 0
        if need <= kv.free:  # kvm.allocate's common case (no eviction)
            kv.free -= need
            kv.private += need
            r.blocks += need
            return True, 0
        preempted = 0
        while not kvm.allocate(r, need):
            victim = self.preempt_newest()
            preempted += 1
            if victim is r:
                return False, preempted
        return True, preempted

    def try_admit(self, budget: int, whole: bool, lone: bool) -> int:
        """Admit the head of the waiting queue with a chunk of at most ``budget`` tokens
        (KVManager.plan_admission). Returns the chunk size, or 0 (nothing changed)."""
        r = self.waiting[0]
        adm = self.kvm.plan_admission(r, budget, whole, lone)
        if adm is None:
            return 0
        self.waiting.popleft()
        self.load -= self.kvm.commit_admission(r, adm)
        r.state = PREFILL
        r.seq = self.next_seq
        self.next_seq += 1
        if r.scheduled_s < 0:
            r.scheduled_s = self.now
        self.prefilling.append(r)
        return adm.chunk

    def preempt_newest(self) -> Request:
        """Preempt the most recently admitted running request by recompute (vLLM's policy)."""
        newest_dec = self.dec.newest_seq()
        newest_pre = self.prefilling[-1] if self.prefilling else None
        if newest_pre is not None and newest_pre.seq > newest_dec:
            r = newest_pre
            self.prefilling.pop()
            old = r.target - r.computed + r.output - r.generated
        else:
            r = self.dec.members[newest_dec]
            self.dec.leave(r)
            old = r.output - r.generated
        self.kvm.release(r)
        r.target = r.prompt + r.generated
        r.computed = 0
        r.state = WAITING
        r.preemptions += 1
        self.load += r.target + r.output - r.generated - old
        self.waiting.appendleft(r)
        return r

    # -- applying a step -----------------------------------------------------------------------
    def finish(self, r: Request, now: float) -> None:
        r.state = DONE
        r.finish_s = now
        self.kvm.release(r)
        self.sink.finish(r)

    def prefill_done(self, r: Request, now: float) -> None:
        """The last prefill chunk of ``r`` ran: its first token is out; it decodes here."""
        r.generated += 1
        if r.first_token_s < 0:
            r.first_token_s = now
        self.kvm.publish_prefix(r)
        if r.generated >= r.output:
            self.finish(r, now)
        else:
            self.dec.join(r)

    def aggregates(self, batch: Batch) -> tuple:
        """The cost model's batch aggregates (cost.step.Aggregates field order)."""
        dec = self.dec
        if not batch.chunks:
            n = dec.n
            return (0, 0, 0, 0, n, dec.dsum + n, n)
        pt = ps = pa = pc = sampled = 0
        for r, c in batch.chunks:
            p = r.computed
            pt += c
            ps += 1
            pa += c * p + c * (c + 1) // 2
            pc += p
            if p + c == r.target:
                sampled += 1
        n = dec.n if batch.decode else 0
        return (pt, ps, pa, pc, n, dec.dsum + n if n else 0, sampled + n)

    def apply(self, batch: Batch, start: float, end: float, cost: Any, agg: tuple) -> None:
        """The batch's iteration ended at ``end``: emit tokens, finish requests, log the step."""
        emitted = 0
        dec = self.dec
        if batch.decode and dec.n:
            n = dec.n
            self.load -= n
            emitted = n
            for r in dec.advance():
                dec.leave(r)
                self.finish(r, end)
        done = False
        for r, c in batch.chunks:
            r.computed += c
            self.load -= c
            if r.computed == r.target:
                done = True
                emitted += 1
                self.load -= 1
                self.prefill_done(r, end)
        if done:
            self.prefilling = [r for r in self.prefilling if r.state == PREFILL]
        self.steps += 1
        self.sink.log(self, start, end - start, cost, agg, emitted, 1)

    def process(self):
        """The SimPy process of this instance (steploop.run)."""
        from servesim.sim.steploop import run

        return run(self)


__all__ = ["Batch", "BatchResult", "Instance", "Pipeline", "at", "INF", "NORMAL", "URGENT"]
