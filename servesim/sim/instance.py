"""One model replica on its devices: the SimPy process that loops batch -> cost -> timeout -> apply.

Decoding requests are tracked in aggregate so that a step costs O(1) Python work in the number
of decoding requests (plus O(1) per prefill chunk):

- ``dclock`` counts this instance's decode iterations; a request that joined the decode set at
  clock ``join`` with ``ctx0`` tokens in KV holds ``ctx0 + dclock - join`` tokens now;
- ``dsum`` is the sum of those contexts, so the step's decode_ctx is ``dsum + n_dec``;
- a request needs a new KV block on the iterations where its context is a multiple of the block
  size, i.e. when ``dclock % bs == (join - ctx0) % bs``: ``buckets`` counts requests per phase,
  so a step's KV growth is one lookup;
- completions come off a heap keyed by the clock at which the last token is emitted.

Pipeline parallelism: a replica with pp stages runs pp instances ("virtual engines", as vLLM V0
does), each with its own scheduler and one batch in flight; their batches share the replica's
stages through a ``Pipeline`` (docs/engine.md, "Pipeline parallelism").
"""

from __future__ import annotations

from collections import deque
from heapq import heappop, heappush
from typing import Any

from simpy.events import NORMAL, URGENT, Event

from servesim.sim.kvcache import KVCache
from servesim.sim.request import DECODE, DONE, PREFILL, WAITING, Request
from servesim.specs.common import SpecError

INF = float("inf")


def at(env: Any, t: float, priority: int = URGENT) -> Event:
    """An event that fires at absolute time ``t``.

    SimPy's Timeout adds a delay to ``now``; scheduling at an absolute time keeps the clock
    bit-identical whether steps are fast-forwarded or not. Step ends are URGENT and arrivals
    NORMAL, so at equal times every step end is handled before an arrival (a fixed tie rule).
    """
    ev = Event(env)
    ev._ok = True
    ev._value = None
    heappush(env._queue, (t, priority, next(env._eid), ev))
    return ev


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
    """What a scheduler picked for one iteration: prefill chunks and whether decodes run."""

    __slots__ = ("chunks", "decode", "preempted")

    def __init__(self, chunks: list, decode: bool, preempted: int):
        self.chunks = chunks  # [(request, tokens)]
        self.decode = decode  # every request of the decode set emits one token
        self.preempted = preempted  # requests preempted while forming it


class Instance:
    """State of one instance plus the primitives its scheduler policy may call."""

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
    ):
        self.id = iid
        self.env = env
        self.kv = kv
        self.sched = scheduler
        self.cost = cost  # agg tuple -> StepCost (memoised)
        self.sink = sink  # cluster side: finish(), log rows, horizon()
        self.max_seqs = max_num_seqs
        self.max_tokens = max_num_batched_tokens
        self.reserve = reserve_output
        # virtual engines of a pipeline couple through its stages at every step: no fast-forward
        self.ff = fast_forward and getattr(scheduler, "ff_safe", False) and pipeline is None
        self.pipe = pipeline
        self.bs = kv.block_size
        self.waiting: deque[Request] = deque()
        self.prefilling: list[Request] = []
        self.decoding: dict[int, Request] = {}  # seq -> request
        self.n_dec = 0
        self.dsum = 0
        self.dclock = 0
        self.alloc_clock = 0  # decode clock up to which decode KV slots are allocated
        self.buckets = [0] * self.bs
        self.heap: list = []  # (finish clock, seq, request)
        self.next_seq = 0
        self.load = 0  # outstanding tokens: prefill still to compute + output still to emit
        self.busy_until = INF
        self.idle = True
        self.wake: Event | None = None
        self.steps = 0
        self.ff_steps = 0  # iterations applied inside fast-forward runs
        self.held = 0  # requests whose KV stays here until a transfer ends (PD prefill)

    # -- snapshots (routers) -------------------------------------------------------------------
    @property
    def n_running(self) -> int:
        return len(self.prefilling) + self.n_dec

    # -- arrivals ------------------------------------------------------------------------------
    def enqueue(self, r: Request) -> None:
        self.check_request(r, r.prompt + r.output - 1, "instance", "max_input/max_output")
        r.instance = self.id
        self.queue(r, r.prompt + r.output)

    def check_request(self, r: Request, kv_tokens: int, kind: str, clip: str) -> None:
        """Fail the run (one SpecError) for a request this instance can never serve."""
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
            self.sink.fail(
                SpecError(
                    "workload",
                    "request",
                    f"#{r.id}: {r.prompt} prompt + {r.output} output tokens",
                    f"needs {need} KV blocks, more than {kind} {self.id} has ({self.kv.total}); "
                    f"clip lengths (trace {clip}) or add memory",
                )
            )

    def queue(self, r: Request, load: int) -> None:
        """Add an admissible request to the waiting queue and wake the process if idle."""
        self.waiting.append(r)
        self.load += load
        if self.idle:
            self.idle = False
            self.wake.succeed()

    # -- primitives for schedulers -------------------------------------------------------------
    def decode_blocks_needed(self) -> int:
        """New KV blocks the decode set needs for the next iteration."""
        return self.buckets[self.dclock % self.bs] if self.alloc_clock == self.dclock else 0

    def grow_decodes(self) -> int:
        """Allocate the decode set's blocks for the next iteration, preempting newest-first."""
        preempted = 0
        need = self.decode_blocks_needed()
        while need > self.kv.available and self.n_dec:
            self.preempt_newest()
            preempted += 1
            need = self.decode_blocks_needed()
        if self.n_dec:
            self.kv.allocate(need)
            self.alloc_clock = self.dclock + 1
        return preempted

    def grow_prefill(self, r: Request, c: int) -> tuple[bool, int]:
        """KV for ``c`` more prefill tokens of running ``r``; preempts newest-first.

        Returns (scheduled, preempted); not scheduled when ``r`` itself was the newest.
        """
        kv = self.kv
        need = kv.blocks_for(r.computed + c) - len(r.cached_hashes) - r.blocks
        if need <= 0:  # reserved at admission
            return True, 0
        preempted = 0
        while need > kv.available:
            victim = self.preempt_newest()
            preempted += 1
            if victim is r:
                return False, preempted
        kv.allocate(need)
        r.blocks += need
        return True, preempted

    def try_admit(self, budget: int, whole: bool, lone: bool) -> int:
        """Admit the head of the waiting queue with a chunk of at most ``budget`` tokens.

        ``whole``: only a whole prefill will do (no chunking); ``lone``: the batch has no prefill
        yet, so a whole prefill larger than the budget is allowed (it could never run otherwise).
        Returns the chunk size, or 0 (nothing changed) when it does not fit.
        """
        r = self.waiting[0]
        kv = self.kv
        hit = 0
        keys = None
        if kv.prefix and r.prefix_hashes:
            if r.keys is None:
                r.keys = kv.keys(r.prefix_hashes, r.prompt)
            keys = r.keys
            hit = min(kv.match(keys), (r.target - 1) // self.bs)
        cached = hit * self.bs
        rest = r.target - cached
        c = min(rest, budget)
        if whole and c < rest:
            if not lone:
                return 0
            c = rest
        if c <= 0:
            return 0
        tokens = cached + c
        if self.reserve:
            tokens = r.target + r.output - r.generated - 1
        need = kv.blocks_for(tokens) - hit
        from_lru = sum(1 for k in keys[:hit] if k in kv.lru) if hit else 0
        if need + from_lru > kv.available:
            return 0
        if hit:
            kv.acquire(keys[:hit])
            r.cached_hashes = tuple(keys[:hit])
        kv.allocate(need)
        self.waiting.popleft()
        r.blocks = need
        r.reserved = self.reserve
        r.computed = cached
        self.load -= cached
        if r.preemptions == 0:
            r.cached_tokens = cached
            kv.hits_tokens += cached
        r.state = PREFILL
        r.seq = self.next_seq
        self.next_seq += 1
        if r.scheduled_s < 0:
            r.scheduled_s = self.env.now
        self.prefilling.append(r)
        return c

    def preempt_newest(self) -> Request:
        """Preempt the most recently admitted running request by recompute (vLLM's policy)."""
        newest_dec = max(self.decoding) if self.decoding else -1
        newest_pre = self.prefilling[-1] if self.prefilling else None
        if newest_pre is not None and newest_pre.seq > newest_dec:
            r = newest_pre
            self.prefilling.pop()
            old = r.target - r.computed + r.output - r.generated
        else:
            r = self.decoding[newest_dec]
            self._leave_decode(r)
            old = r.output - r.generated
        self._release(r)
        r.target = r.prompt + r.generated
        r.computed = 0
        r.state = WAITING
        r.preemptions += 1
        self.load += r.target + r.output - r.generated - old
        self.waiting.appendleft(r)
        return r

    # -- internals -----------------------------------------------------------------------------
    def _leave_decode(self, r: Request) -> None:
        """Remove ``r`` from the decode set, bringing its counters up to date."""
        del self.decoding[r.seq]
        steps = self.dclock - r.join
        self.n_dec -= 1
        self.dsum -= r.ctx0 + steps
        if not r.reserved:
            self.buckets[(r.join - r.ctx0) % self.bs] -= 1
            r.blocks = self.kv.blocks_for(r.ctx0 + self.alloc_clock - r.join) - len(r.cached_hashes)
        r.generated += steps
        if not self.n_dec:
            # the next iteration's blocks went with the last decoding request; a request that
            # joins later must have its own growth allocated (a prefill preempting the whole
            # decode set after grow_decodes, e.g. a recompute older than a landed PD request)
            self.alloc_clock = self.dclock

    def _join_decode(self, r: Request) -> None:
        r.state = DECODE
        r.join = self.dclock
        r.ctx0 = r.target
        self.decoding[r.seq] = r
        self.n_dec += 1
        self.dsum += r.target
        if not r.reserved:
            self.buckets[(r.join - r.ctx0) % self.bs] += 1
        # the last token is emitted on the iteration that brings the clock to join + remaining
        heappush(self.heap, (self.dclock + r.output - r.generated, r.seq, r))

    def _release(self, r: Request) -> None:
        self.kv.release(r.blocks)
        r.blocks = 0
        if r.cached_hashes:
            self.kv.unref(r.cached_hashes)
            r.cached_hashes = ()

    def _finish(self, r: Request, now: float) -> None:
        r.state = DONE
        r.finish_s = now
        self._release(r)
        self.sink.finish(r)

    def _publish_prefix(self, r: Request) -> None:
        """Hand the prompt's full blocks to the prefix cache once its prefill is computed."""
        if r.keys and len(r.cached_hashes) < len(r.keys):
            full = min(len(r.keys), r.target // self.bs)
            mine = self.kv.publish(r.keys[len(r.cached_hashes) : full])
            if mine:
                r.blocks -= len(mine)
                r.cached_hashes = r.cached_hashes + tuple(mine)

    def _prefill_done(self, r: Request, now: float) -> None:
        r.generated += 1
        if r.first_token_s < 0:
            r.first_token_s = now
        self._publish_prefix(r)
        if r.generated >= r.output:
            self._finish(r, now)
        else:
            self._join_decode(r)

    def _aggregates(self, batch: Batch) -> tuple:
        if not batch.chunks:
            n = self.n_dec
            return (0, 0, 0, 0, n, self.dsum + n, n)
        pt = ps = pa = pc = sampled = 0
        for r, c in batch.chunks:
            p = r.computed
            pt += c
            ps += 1
            pa += c * p + c * (c + 1) // 2
            pc += p
            if p + c == r.target:
                sampled += 1
        n = self.n_dec if batch.decode else 0
        return (pt, ps, pa, pc, n, self.dsum + n if n else 0, sampled + n)

    # -- the process ---------------------------------------------------------------------------
    def process(self):
        env = self.env
        next_batch = self.sched.next_batch
        aggregates = self._aggregates
        costf = self.cost
        apply = self._apply
        hook = self.sink.step_hook
        queue = env._queue
        eid = env._eid
        kv = self.kv
        pipe = self.pipe
        while True:
            batch = next_batch(self)
            if batch is None:
                if self.waiting and not self.n_running and not self.held:
                    raise RuntimeError("scheduler idles with requests waiting on an empty instance")
                self.busy_until = INF
                self.idle = True
                self.wake = env.event()
                yield self.wake
                continue
            agg = aggregates(batch)
            cost = costf(agg)
            start = env._now
            end = start + cost[0]
            if pipe is not None:  # the step starts when the first stage takes it
                start, end = pipe.enter(start, cost[0])
            # With a prefix cache a blocked waiting request can become admissible as decode
            # growth evicts its cached blocks (its hits then cost fewer blocks), so admission is
            # not monotone there: no fast-forward while such a request waits.
            if (
                self.ff
                and batch.decode
                and not batch.chunks
                and not batch.preempted
                and not (self.waiting and kv.prefix)
            ):
                start, end, cost, agg = self._fast_forward(start, end, cost, agg)
            self.busy_until = end
            ev = Event(env)  # at(env, end), inlined: the hot path
            ev._ok = True
            ev._value = None
            heappush(queue, (end, URGENT, next(eid), ev))
            yield ev
            apply(batch, start, end, cost, agg)
            if hook is not None:
                hook(self)

    def _apply(self, batch: Batch, start: float, end: float, cost: Any, agg: tuple) -> None:
        emitted = 0
        if batch.decode and self.n_dec:
            n = self.n_dec
            self.dclock += 1
            self.dsum += n
            self.load -= n
            emitted = n
            self.alloc_clock = self.dclock
            heap = self.heap
            clock = self.dclock
            while heap and heap[0][0] <= clock:
                _, seq, r = heappop(heap)
                if r.state == DECODE and r.seq == seq:
                    self._leave_decode(r)
                    self._finish(r, end)
        done = False
        for r, c in batch.chunks:
            r.computed += c
            self.load -= c
            if r.computed == r.target:
                done = True
                emitted += 1
                self.load -= 1
                self._prefill_done(r, end)
        if done:
            self.prefilling = [r for r in self.prefilling if r.state == PREFILL]
        self.steps += 1
        self.sink.log(self, start, end - start, cost, agg, emitted, 1)

    def _fast_forward(self, start: float, end: float, cost: Any, agg: tuple) -> tuple:
        """Run decode-only iterations back to back without SimPy events.

        Iteration j is applied here (not after a timeout) only if nothing could observe or change
        this instance before it ends: it ends no later than the cluster's horizon (the next
        arrival or hand-off), no request finishes on it, and the next iteration's KV growth fits
        (so the next iteration preempts nothing and, by the policy's monotonicity, admits
        nothing). The last iteration is applied by the caller after its timeout, as usual.
        """
        horizon = self.sink.horizon(self)
        if end > horizon:
            return start, end, cost, agg
        kv = self.kv
        heap = self.heap
        while heap and (heap[0][2].state != DECODE or heap[0][2].seq != heap[0][1]):
            heappop(heap)
        # Nothing finishes or leaves during the run, so the first finish clock is fixed; the run
        # may apply iterations up to the one before it.
        first_finish = heap[0][0] if heap else 1 << 62
        last = first_finish - 1
        buckets = self.buckets
        bs = self.bs
        n = self.n_dec
        costf = self.cost
        log = self.sink.log
        clock = self.dclock
        dsum = self.dsum
        avail = kv.available
        applied = 0
        while end <= horizon and clock < last:
            need = buckets[(clock + 1) % bs]
            if need > avail:
                break
            clock += 1
            dsum += n
            self.dclock = clock
            log(self, start, end - start, cost, agg, n, 1)
            kv.allocate(need)
            avail -= need
            applied += 1
            agg = (0, 0, 0, 0, n, dsum + n, n)
            cost = costf(agg)
            start = end
            end = start + cost.seconds
        self.dsum = dsum
        self.alloc_clock = clock + 1
        self.load -= n * applied
        self.steps += applied
        self.ff_steps += applied
        return start, end, cost, agg


__all__ = ["Batch", "Instance", "Pipeline", "at", "NORMAL", "URGENT"]
