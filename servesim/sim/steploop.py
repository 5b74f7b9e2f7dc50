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
            (inst.ff or inst.ff_idle and not inst.waiting)
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

    The batch is the same n sequences throughout, so the step cost comes from ``decode(n)`` (the
    cost function's attribute: a function of the summed decode context alone, cost/stepfast.py)
    and only the KV column of the step row changes from row to row. With the cluster's step log
    the rows are written directly ("full" mode: the sink's ``decode_rows``, the log's packers)
    or merged at once ("runs": ``decode_run``), and the run's KV blocks are taken once at its end
    (the same blocks, evicted in the same order); any other log gets one call per iteration,
    with the blocks taken as they go. (Three loops of the same shape: this is the engine's
    hottest code, so each writes its rows without an extra call or list per iteration.)
    """
    horizon = inst.sink.horizon(inst)
    if end > horizon:
        return start, end, cost, agg
    dec = inst.dec
    n = dec.n
    decode = getattr(inst.cost, "decode", None)
    costf = decode(n) if decode is not None else (lambda dc: inst.cost((0, 0, 0, 0, n, dc, n)))
    rows = getattr(inst.sink, "decode_rows", None)
    write = getattr(inst.sink, "decode_run", None)
    c0 = dec.clock
    if rows is not None:
        start, end, cost = _run_rows_written(inst, rows, costf, start, end, cost, horizon)
    elif write is not None:
        start, end, cost = _run_written_at_once(inst, write, costf, start, end, cost, horizon)
    else:
        start, end, cost = _run_logged_per_step(inst, costf, start, end, cost, agg, horizon)
    applied = dec.clock - c0
    if applied:
        agg = (0, 0, 0, 0, n, dec.dsum + n, n)
    dec.alloc_clock = dec.clock + 1
    inst.load -= n * applied
    inst.steps += applied
    inst.ff_steps += applied
    return start, end, cost, agg


def _run_rows_written(inst, rows, costf, start, end, cost, horizon) -> tuple:
    """fast_forward's loop for the cluster's "full" step log: each row packed and appended here
    (records._row_writer's packers and appends, the same bytes as its ``log``)."""
    dec, kv = inst.dec, inst.kv
    fb, ib, pf, pi = rows
    last = dec.first_finish() - 1  # see _run_written_at_once
    buckets, bs, n = dec.buckets, dec.bs, dec.n
    clock, dsum = dec.clock, dec.dsum
    avail = kv.available
    used = kv.private + len(kv.refs)
    iid, total, waiting, running = inst.id, kv.total, len(inst.waiting), inst.n_running
    taken = 0
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
    dec.clock, dec.dsum = clock, dsum
    return start, end, cost


def _run_written_at_once(inst, write, costf, start, end, cost, horizon) -> tuple:
    """fast_forward's loop for the cluster's "runs" step log: items (start, duration, cost, KV
    blocks used) collected, then merged by ``write`` (records.StepLog.log_decode_run)."""
    dec, kv = inst.dec, inst.kv
    # Nothing finishes or leaves during the run, so the first finish clock is fixed; the run
    # may apply iterations up to the one before it.
    last = dec.first_finish() - 1
    buckets, bs, n = dec.buckets, dec.bs, dec.n
    clock, dsum = dec.clock, dec.dsum
    avail = kv.available
    used = kv.private + len(kv.refs)
    taken = 0
    items = []
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
        write(inst, n, items)
        kv.allocate(taken)
    dec.clock, dec.dsum = clock, dsum
    return start, end, cost


def _run_logged_per_step(inst, costf, start, end, cost, agg, horizon) -> tuple:
    """fast_forward's loop for any other step log: one ``log`` call per iteration, which may read
    the instance's state (its KV blocks are taken iteration by iteration)."""
    dec, kv = inst.dec, inst.kv
    log = inst.sink.log
    last = dec.first_finish() - 1
    buckets, bs, n = dec.buckets, dec.bs, dec.n
    clock, dsum = dec.clock, dec.dsum
    avail = kv.available
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
        agg = (0, 0, 0, 0, n, dsum + n, n)
        cost = costf(dsum + n)
        if not cost[0] > 0:
            raise ValueError(f"step cost must be positive, got {cost[0]!r} for {agg}")
        start = end
        end = start + cost[0]
    dec.clock, dec.dsum = clock, dsum
    return start, end, cost
