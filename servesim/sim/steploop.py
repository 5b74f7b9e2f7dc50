"""The step loop of one instance: form a batch, ask the cost model, wait, apply.

One SimPy process per instance (never per request). Between events nothing outside an instance
can change it, so runs of decode-only iterations are applied back to back without SimPy events
(``fast_forward``), giving the same step rows and request times as the plain loop. An ``inline``
instance (one that interacts with the rest of the run only through arrivals: colocated, no
pipeline, open loop without a concurrency cap) goes further: every step that ends by the next
arrival is applied at once, without a SimPy event, and the instance keeps its own clock
``inst.now``, handing it back to SimPy before it waits for anything.
"""

from __future__ import annotations

from typing import Any

from servesim.sim.events import INF, step_timer


def run(inst: Any):
    """The SimPy process: loops batch -> cost -> timeout -> apply until the run ends."""
    env = inst.env
    next_batch = inst.sched.next_batch
    aggregates = inst.aggregates
    costf = inst.cost
    apply = inst.apply
    hook = inst.sink.step_hook
    fire = step_timer(env)
    kv = inst.kv
    pipe = inst.pipe
    intake = inst.intake
    inline = inst.inline
    horizon = inst.sink.horizon
    now = env.now
    while True:
        if intake is not None:
            intake()
        inst.now = now
        batch = next_batch(inst)
        if batch is None:
            if inst.waiting and not inst.n_running and not inst.held:
                raise RuntimeError("scheduler idles with requests waiting on an empty instance")
            if now > env.now:  # steps were applied inline: bring SimPy's clock to their end
                inst.busy_until = now
                yield fire(now)
            inst.busy_until = INF
            inst.idle = True
            inst.wake = env.event()
            yield inst.wake
            now = env.now
            continue
        agg = aggregates(batch)
        cost = costf(agg)
        start = now
        end = start + cost[0]
        if pipe is not None:  # the step starts when the first stage takes it
            start, end = pipe.enter(start, cost[0])
        # With a prefix cache a blocked waiting request can become admissible as decode
        # growth evicts its cached blocks (its hits then cost fewer blocks), so admission is
        # not monotone there: no fast-forward while such a request waits.
        if (
            inst.ff
            and batch.decode
            and not batch.chunks
            and not batch.preempted
            and not (inst.waiting and kv.prefix)
        ):
            start, end, cost, agg = fast_forward(inst, start, end, cost, agg)
        inst.busy_until = end
        if not inline or end > horizon(inst):
            yield fire(end)
        now = end
        apply(batch, start, end, cost, agg)
        if hook is not None:
            hook(inst)


def fast_forward(inst: Any, start: float, end: float, cost: Any, agg: tuple) -> tuple:
    """Run decode-only iterations back to back without SimPy events.

    Iteration j is applied here (not after a timeout) only if nothing could observe or change
    the instance before it ends: it ends no later than the cluster's horizon (the next arrival or
    hand-off), no request finishes on it, and the next iteration's KV growth fits (so the next
    iteration preempts nothing and, by the policy's monotonicity, admits nothing). The last
    iteration is applied by the caller after its timeout, as usual.
    """
    horizon = inst.sink.horizon(inst)
    if end > horizon:
        return start, end, cost, agg
    kv = inst.kv
    dec = inst.dec
    # Nothing finishes or leaves during the run, so the first finish clock is fixed; the run
    # may apply iterations up to the one before it.
    last = dec.first_finish() - 1
    buckets = dec.buckets
    bs = dec.bs
    n = dec.n
    costf = inst.cost
    log = inst.sink.log
    clock = dec.clock
    dsum = dec.dsum
    avail = kv.available
    applied = 0
    while end <= horizon and clock < last:
        need = buckets[(clock + 1) % bs]
        if need > avail:
            break
        clock += 1
        dsum += n
        dec.clock = clock
        log(inst, start, end - start, cost, agg, n, 1)
        kv.allocate(need)
        avail -= need
        applied += 1
        agg = (0, 0, 0, 0, n, dsum + n, n)
        cost = costf(agg)
        start = end
        end = start + cost.seconds
    dec.dsum = dsum
    dec.alloc_clock = clock + 1
    inst.load -= n * applied
    inst.steps += applied
    inst.ff_steps += applied
    return start, end, cost, agg
