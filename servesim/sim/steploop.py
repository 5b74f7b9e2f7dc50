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

    The batch is the same n sequences throughout, so the step cost comes from ``decode(n)``, a
    function of the decode context alone (cost.step's ``decode_fn``: what does not depend on the
    context is computed once), and only the KV column of the step row changes from row to row:
    in the "full" step log mode the rows are written here directly (``log.rows``), the KV
    blocks are taken once at the end (the same blocks, evicted in the same order).
    """
    horizon = inst.sink.horizon(inst)
    if end > horizon:
        return start, end, cost, agg
    kv = inst.kv
    dec = inst.dec
    # Nothing finishes or leaves during the run, so the first finish clock is fixed; the run
    # may apply iterations up to the one before it.
    last = dec.first_finish() - 1
    clock = dec.clock
    buckets = dec.buckets
    bs = dec.bs
    n = dec.n
    decode = getattr(inst.cost, "decode", None)
    costf = decode(n) if decode is not None else (lambda dc: inst.cost((0, 0, 0, 0, n, dc, n)))
    log = inst.sink.log
    rows = getattr(log, "rows", None)  # records' "full" row writer
    owner = getattr(log, "__self__", None)
    merge = None  # records' "runs" log: rows of a whole run merged at once
    if rows is None and log is getattr(owner, "log", None):
        merge = getattr(owner, "log_decode_run", None)
    dsum = dec.dsum
    avail = kv.available
    taken = 0
    c0 = clock
    if merge is not None:
        items = []
        used = kv.private + len(kv.refs)
        while end <= horizon and clock < last:
            need = buckets[(clock + 1) % bs]
            if need > avail:
                break
            clock += 1
            dsum += n
            items.append((start, end - start, cost, used + taken))
            avail -= need
            taken += need
            cost = costf(dsum + n)
            if not cost[0] > 0:
                raise ValueError(f"step cost must be positive, got {cost[0]!r}")
            start = end
            end = start + cost[0]
        if items:
            merge(inst, n, items)
        if taken:
            kv.allocate(taken)
    elif rows is None:
        while end <= horizon and clock < last:
            need = buckets[(clock + 1) % bs]
            if need > avail:
                break
            clock += 1
            dsum += n
            dec.clock = clock
            log(inst, start, end - start, cost, agg, n, 1)  # may read the instance's state
            kv.allocate(need)
            avail -= need
            agg = (0, 0, 0, 0, n, dsum + n, n)
            cost = costf(dsum + n)
            if not cost[0] > 0:
                raise ValueError(f"step cost must be positive, got {cost[0]!r} for {agg}")
            start = end
            end = start + cost[0]
    else:
        fb, ib, pf, pi = rows
        used = kv.private + len(kv.refs)
        iid, total, waiting, running = inst.id, kv.total, len(inst.waiting), inst.n_running
        while end <= horizon and clock < last:
            need = buckets[(clock + 1) % bs]
            if need > avail:
                break
            clock += 1
            dsum += n
            fb(pf(start, end - start, 0, *cost[1:8]))
            ib(pi(iid, n, n, used + taken, total, waiting, running, n, 1))
            avail -= need
            taken += need
            cost = costf(dsum + n)
            if not cost[0] > 0:
                raise ValueError(f"step cost must be positive, got {cost[0]!r}")
            start = end
            end = start + cost[0]
        if taken:
            kv.allocate(taken)
    applied = clock - c0
    if applied:
        agg = (0, 0, 0, 0, n, dsum + n, n)
    dec.clock = clock
    dec.dsum = dsum
    dec.alloc_clock = clock + 1
    inst.load -= n * applied
    inst.steps += applied
    inst.ff_steps += applied
    return start, end, cost, agg
