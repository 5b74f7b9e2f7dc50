"""sim/records.py: step rows written through the struct-packed writer and moved into numpy
columns segment by segment equal a plain per-column conversion, in value, dtype and order."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from servesim.sim import records
from servesim.sim.records import STEP_COLUMNS, RequestLog, StepLog, StepTable


def _inst(iid: int, rng) -> SimpleNamespace:
    kv = SimpleNamespace(private=int(rng.integers(0, 500)), refs={}, total=1000)
    return SimpleNamespace(
        id=iid,
        kv=kv,
        waiting=[0] * int(rng.integers(0, 5)),
        prefilling=[0] * int(rng.integers(0, 3)),
        n_dec=int(rng.integers(0, 40)),
    )


def _rows(n: int, instances: int, seed: int) -> list[tuple]:
    """Step rows as the engine logs them: (inst, start, dur, cost, agg, emitted, steps)."""
    rng = np.random.default_rng(seed)
    out = []
    clocks = [0.0] * instances
    for _ in range(n):
        i = int(rng.integers(0, instances))
        dur = float(rng.exponential(0.02)) + 1e-4
        cost = (dur, *rng.random(6) * 1e12, 0.001, 8)
        n_dec = int(rng.integers(0, 40))
        agg = (int(rng.integers(0, 600)), int(rng.integers(0, 4)), 0, 0, n_dec, 0, 0)
        out.append((_inst(i, rng), clocks[i], dur, cost, agg, int(rng.integers(0, 50)), 1))
        clocks[i] += dur
    return out


def _reference(rows: list[tuple]) -> dict[str, np.ndarray]:
    """The step table computed column by column, sorted by (start_s, instance)."""
    cols: dict[str, list] = {k: [] for k in STEP_COLUMNS}
    for inst, start, dur, cost, agg, emitted, steps in rows:
        n = agg[4]
        vals = {
            "instance": inst.id, "start_s": start, "duration_s": dur, "prefill_tokens": agg[0],
            "decode_seqs": n, "batch_size": agg[1] + n, "flops": cost[1], "bytes": cost[2],
            "comm_bytes": cost[3], "compute_s": cost[4], "memory_s": cost[5], "comm_s": cost[6],
            "overhead_s": cost[7], "kv_used_blocks": inst.kv.private + len(inst.kv.refs),
            "kv_total_blocks": inst.kv.total, "waiting": len(inst.waiting),
            "running": len(inst.prefilling) + inst.n_dec, "new_tokens": emitted, "steps": steps,
        }  # fmt: skip
        for k in cols:
            cols[k].append(vals[k])
    out = {k: np.array(v, dtype=StepTable.COLUMNS[k]) for k, v in cols.items()}
    order = np.lexsort((out["instance"], out["start_s"]))
    return {k: v[order] for k, v in out.items()}


@pytest.mark.parametrize("instances", [1, 3])
@pytest.mark.parametrize("segment", [1, 7, 1 << 16])
def test_step_log_columns_equal_a_per_column_conversion(monkeypatch, instances, segment):
    monkeypatch.setattr(records, "_SEGMENT_ROWS", segment)
    rows = _rows(300, instances, seed=instances * 100 + segment)
    log = StepLog("full")
    for row in rows:
        log.log(*row)
    got = log.arrays()
    want = _reference(rows)
    assert list(got) == list(STEP_COLUMNS)
    for k in want:
        assert got[k].dtype == want[k].dtype, k
        assert np.array_equal(got[k], want[k]), k
    assert len(log) == 0  # consumed


def test_step_log_empty():
    got = StepLog("full").arrays()
    assert all(len(v) == 0 and v.dtype == np.dtype(StepTable.COLUMNS[k]) for k, v in got.items())


def test_request_log_sorted_by_id_and_consumed():
    log = RequestLog()
    for rid in (5, 2, 9, 0):
        r = SimpleNamespace(id=rid, arrival_s=rid * 0.5, scheduled_s=rid + 0.1,
                            first_token_s=rid + 0.2, finish_s=rid + 1.0, prompt=10 * rid,
                            output=rid + 1, cached_tokens=0, preemptions=rid % 2, instance=rid % 3,
                            prefill_instance=-1, kv_transfer_s=0.0)  # fmt: skip
        log.add(r)
    t = log.arrays()
    assert t["request_id"].tolist() == [0, 2, 5, 9]
    assert t["prompt_tokens"].tolist() == [0, 20, 50, 90]
    assert t["finish_s"].tolist() == [1.0, 3.0, 6.0, 10.0]
    assert t["instance"].dtype == np.int64 and t["preemptions"].tolist() == [0, 0, 1, 1]
    assert all(len(c) == 0 for c in log.cols.values())


@pytest.mark.parametrize("mode", ["runs", "full"])
@pytest.mark.parametrize("seed", range(3))
def test_decode_run_equals_one_log_call_per_iteration(seed, mode):
    """log_decode_run (a fast-forwarded run, KV taken at its end) writes what per-iteration
    ``log`` calls write, merges included; some items do not continue the row before them."""
    rng = np.random.default_rng(seed)
    inst = _inst(0, rng)
    inst.kv.used = inst.kv.private
    inst.n_running = len(inst.prefilling) + inst.n_dec
    n = 7
    items, t = [], 0.0
    for j in range(60):
        dur = float(rng.exponential(0.02)) + 1e-4
        cost = (dur, *rng.random(6) * 1e12, 0.001, 8)
        if j % 17 == 5:
            t += 1e-3  # a gap: the next iteration starts a new row
        items.append((t, dur, cost, 100 + j))
        t = t + dur
    logs = [StepLog(mode), StepLog(mode)]
    for log in logs:  # one earlier row of the same batch that the run continues
        prev = (0, 0, 0, 0, n, 0, n)
        log.log(inst, -0.5, 0.5, (0.5, 1.0, 2.0, 0.0, 0.1, 0.2, 0.0, 0.2, 8), prev, n, 1)
    for start, dur, cost, used in items:
        inst.kv.private = inst.kv.used = used
        logs[0].log(inst, start, dur, cost, (0, 0, 0, 0, n, 0, n), n, 1)
    logs[1].log_decode_run(inst, n, items)
    a, b = logs[0].arrays(), logs[1].arrays()
    assert a["steps"].sum() == 61 and (len(a["steps"]) < 61) == (mode == "runs")
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k
