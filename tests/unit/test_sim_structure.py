"""The engine's parts: queue orders, the scheduler's batch context, check-then-act KV, SimPy
internals in one module."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest

from servesim.sim import batching
from servesim.sim.cluster import run
from servesim.sim.kvcache import KVCache
from servesim.sim.kvmanager import KVManager
from servesim.sim.request import Request
from servesim.sim.testing import ListWorkload, colocated_config, linear_step_cost
from servesim.specs.common import SpecError

SIM = Path(batching.__file__).parent
COST = linear_step_cost(base_s=1e-2, prefill_token_s=1e-5, decode_seq_s=1e-4)

# request 0 holds the only seat; 1, 2, 3 arrive while it runs, with priorities 2, 0, 1
SPECS = [(0.0, 10, 5, -1, 0, 0), (0.001, 10, 2, -1, 0, 2), (0.002, 10, 2, -1, 0, 0),
         (0.003, 10, 2, -1, 0, 1)]  # fmt: skip


def _admission_order(queue: str) -> list[int]:
    cfg = colocated_config(policy="sarathi", max_num_seqs=1, max_num_batched_tokens=64,
                           queue=queue)  # fmt: skip
    raw = run(cfg, step_fn=COST, workload=ListWorkload(SPECS), kv_blocks=100)
    ids, sched = raw.requests["request_id"], raw.requests["scheduled_s"]
    return [int(i) for _, i in sorted(zip(sched, ids))]


def test_fifo_queue_admits_in_arrival_order():
    assert _admission_order("fifo") == [0, 1, 2, 3]


def test_priority_queue_admits_lowest_priority_value_first():
    assert _admission_order("priority") == [0, 2, 3, 1]


def test_unknown_queue_order_is_a_spec_error():
    with pytest.raises(SpecError, match="queue"):
        colocated_config(queue="lifo")


def test_trace_priority_column_reaches_the_queue(tmp_path):
    from servesim.sim.cluster import run as run_cfg
    from servesim.specs.config import load_config

    trace = tmp_path / "t.csv"
    rows = ["arrival,prompt_tokens,output_tokens,priority"]
    rows += [f"{a},{p},{o},{q}" for a, p, o, _, _, q in SPECS]
    trace.write_text("\n".join(rows) + "\n")
    base = colocated_config(policy="sarathi", max_num_seqs=1, max_num_batched_tokens=64,
                            queue="priority")  # fmt: skip
    from servesim.specs.config import config_to_dict

    data = config_to_dict(base)
    data["workload"] = {"trace": {"path": str(trace), "format": "csv", "time_unit": "s"}}
    raw = run_cfg(load_config(data), step_fn=COST, kv_blocks=100)
    order = sorted(zip(raw.requests["scheduled_s"], raw.requests["request_id"]))
    assert [int(i) for _, i in order] == [0, 2, 3, 1]


def test_schedulers_use_only_the_batch_context():
    """Every attribute a scheduler reads on its context is one the BatchContext protocol names."""
    tree = ast.parse((SIM / "batching.py").read_text())
    used = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "inst"
    }
    assert used and used <= batching.CONTEXT_NAMES, used - batching.CONTEXT_NAMES
    declared = {n for n in vars(batching.BatchContext) if not n.startswith("_")}
    declared |= set(batching.BatchContext.__annotations__)
    assert declared == batching.CONTEXT_NAMES


def test_kv_plan_that_does_not_fit_changes_nothing_and_commit_takes_the_plan():
    kv = KVCache(10, block_size=16)
    kvm = KVManager(kv)
    r = Request(0, 0.0, prompt=400, output=5)  # 25 blocks: never fits whole
    before = (kv.free, kv.private, dict(kv.refs), list(kv.lru))
    assert kvm.plan_admission(r, budget=400, whole=True, lone=False) is None
    assert (kv.free, kv.private, dict(kv.refs), list(kv.lru)) == before and r.blocks == 0
    adm = kvm.plan_admission(r, budget=64, whole=False, lone=False)  # a 64-token chunk
    assert adm.chunk == 64 and adm.need == 4 and kv.free == 10
    kvm.commit_admission(r, adm)
    assert kv.free == 6 and r.blocks == 4 and kv.check()
    assert not kvm.allocate(r, 7) and kv.free == 6 and r.blocks == 4
    kvm.release(r)
    assert kv.free == 10 and r.blocks == 0 and kv.check()


def test_only_events_module_touches_simpy_internals():
    internal = re.compile(r"\.(_queue|_eid|_now)\b")  # env._queue, env._eid, env._now
    offenders = [
        p.name
        for p in SIM.parent.rglob("*.py")
        if p.name != "events.py" and internal.search(p.read_text())
    ]
    assert offenders == []


def test_engine_tables_are_typed_columns():
    cfg = colocated_config(policy="sarathi", max_num_seqs=4, max_num_batched_tokens=64)
    raw = run(cfg, step_fn=COST, workload=ListWorkload(SPECS), kv_blocks=100)
    for table in (raw.steps, raw.requests):
        assert list(table) == list(type(table).COLUMNS)
        for name, code in type(table).COLUMNS.items():
            assert table[name].dtype == np.dtype(code) and len(table[name]) == table.n_rows
    assert raw.requests.n_rows == 4 and raw.steps.start_s is raw.steps["start_s"]
    with pytest.raises(AttributeError, match="no column"):
        _ = raw.steps.nope


def test_a_request_that_can_never_fit_is_dropped_at_entry_or_fails_a_strict_run():
    import dataclasses

    cfg = colocated_config(policy="sarathi", max_num_seqs=4, max_num_batched_tokens=64)
    specs = [(0.0, 10, 5), (0.01, 5000, 5), (0.02, 10, 5)]  # 5000 tokens: 313 blocks of 16
    raw = run(cfg, step_fn=COST, workload=ListWorkload(specs), kv_blocks=100)
    assert raw.issued == 3 and raw.dropped == {"failed_kv_capacity": 1}
    strict = dataclasses.replace(cfg, sim=dataclasses.replace(cfg.sim, strict=True))
    with pytest.raises(SpecError, match="KV blocks"):
        run(strict, step_fn=COST, workload=ListWorkload(specs), kv_blocks=100)


def test_admission_reject_oversized_turns_the_request_away_and_counts_it_failed():
    from servesim.accounting.metrics import summarize

    cfg = colocated_config(policy="sarathi", max_num_seqs=4, max_num_batched_tokens=64,
                           admission="reject_oversized")  # fmt: skip
    specs = [(0.0, 10, 5), (0.01, 5000, 5), (0.02, 10, 5)]
    raw = run(cfg, step_fn=COST, workload=ListWorkload(specs), kv_blocks=100)
    assert list(raw.requests["request_id"]) == [0, 2] and raw.issued == 3
    s = summarize(raw, cfg)
    assert (s["num_requests"], s["completed"], s["failed"]) == (3, 2, 1)


def test_admission_reject_in_closed_loop_lets_the_client_go_on():
    from servesim.sim.testing import ClientSpec

    cfg = colocated_config(policy="sarathi", max_num_seqs=4, max_num_batched_tokens=64,
                           admission="reject_oversized")  # fmt: skip
    wl = ListWorkload([(0.0, 10, 3), (0.0, 5000, 3)], clients=ClientSpec(1), num_requests=6)
    raw = run(cfg, step_fn=COST, workload=wl, kv_blocks=100)
    assert raw.issued == 6 and len(raw.requests["request_id"]) == 3  # every other one rejected
