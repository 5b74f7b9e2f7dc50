"""Pipeline parallelism: virtual engines sharing a replica's stages."""

from __future__ import annotations

import numpy as np
import pytest

from servesim.sim.cluster import run
from servesim.sim.instance import Pipeline
from servesim.sim.pools import ColocatedPool
from servesim.sim.testing import (
    ClientSpec,
    ListWorkload,
    colocated_config,
    linear_step_cost,
)
from servesim.specs.common import SpecError

# a fixed cost per step (weight reads) dominates small batches, as in memory-bound decoding
COST = linear_step_cost(base_s=1e-2, prefill_token_s=1e-6, decode_seq_s=1e-6)
# compute-bound: step time proportional to the batch's work
COMPUTE = linear_step_cost(base_s=1e-5, prefill_token_s=1e-5, decode_seq_s=1e-3)


def make_cfg(pp=2, tp=1, instances=1, seqs=256, router="least_loaded", policy="sarathi"):
    return colocated_config(
        instances=instances, router=router, tp=tp, pp=pp, policy=policy, max_num_seqs=seqs
    )


def one_batch_in_flight(monkeypatch):
    """The model before virtual engines: one batch through all stages at a time."""
    monkeypatch.setattr(ColocatedPool, "pipelined", False)


def closed(n_clients, n_requests, prompt=32, output=64):
    return ListWorkload(
        [(0.0, prompt, output)], clients=ClientSpec(n_clients), num_requests=n_requests
    )


def output_rate(raw):
    r = raw.requests
    return float(r["output_tokens"].sum()) / raw.sim_end_s


def test_pipeline_unobstructed_batch_takes_exactly_pipeline_latency():
    p = Pipeline(32, 4)
    assert p.enter(1.0, 0.3) == (1.0, 1.3)


def test_pipeline_second_batch_enters_when_first_stage_frees():
    p = Pipeline(32, 2)
    assert p.enter(0.0, 1.0) == (0.0, 1.0)
    assert p.enter(0.0, 1.0) == (0.5, 1.5)
    assert p.enter(1.0, 1.0) == (1.0, 2.0)  # stage 0 free again at 1.0


def test_pipeline_short_batch_behind_long_one_waits_at_later_stage():
    p = Pipeline(32, 2)
    p.enter(0.0, 2.0)  # stages busy until 1.0 and 2.0
    start, end = p.enter(0.0, 0.5)
    assert start == 1.0
    assert end == pytest.approx(2.25)  # waits for stage 1, then its 0.25 s there


def test_pipeline_uneven_layers_first_stages_take_remainder():
    assert Pipeline(5, 2).cum == [0.6, 1.0]
    assert Pipeline(32, 3).cum == pytest.approx([11 / 32, 22 / 32, 1.0])


def test_sim_pp2_saturated_compute_bound_throughput_about_twice_one_batch_in_flight(monkeypatch):
    new = run(make_cfg(pp=2), step_fn=COMPUTE, workload=closed(64, 640), kv_blocks=4000)
    one_batch_in_flight(monkeypatch)
    old = run(make_cfg(pp=2), step_fn=COMPUTE, workload=closed(64, 640), kv_blocks=4000)
    ratio = output_rate(new) / output_rate(old)
    assert 1.9 < ratio <= 2.0
    assert set(np.unique(new.steps["instance"])) == {0, 1}


def test_sim_pp2_fixed_cost_steps_gain_nothing_over_one_big_batch(monkeypatch):
    # two half batches per pipeline latency read the weights twice: same tokens per second as
    # one batch of all requests through idle-half stages (pipelining pays off when compute is)
    new = run(make_cfg(pp=2), step_fn=COST, workload=closed(64, 640), kv_blocks=4000)
    one_batch_in_flight(monkeypatch)
    old = run(make_cfg(pp=2), step_fn=COST, workload=closed(64, 640), kv_blocks=4000)
    assert output_rate(new) / output_rate(old) == pytest.approx(1.0, abs=0.02)


def test_sim_pp2_low_load_tpot_equals_sum_of_stage_times(monkeypatch):
    wl = ListWorkload([(0.0, 20, 11), (5.0, 20, 11)])
    new = run(make_cfg(pp=2), step_fn=COST, workload=wl, kv_blocks=100)
    decode_step = 1e-2 + 1e-6  # one sequence: the whole pipeline latency per token
    r = new.requests
    tpot = (r["finish_s"] - r["first_token_s"]) / (r["output_tokens"] - 1)
    assert tpot == pytest.approx([decode_step, decode_step], rel=1e-12)
    one_batch_in_flight(monkeypatch)
    old = run(make_cfg(pp=2), step_fn=COST, workload=wl, kv_blocks=100)
    assert np.allclose(old.requests["finish_s"], r["finish_s"], rtol=1e-12)


def test_sim_pp_instances_share_replica_devices_kv_and_seqs():
    raw = run(
        make_cfg(pp=2, tp=2, instances=2, seqs=5),
        step_fn=COST,
        workload=ListWorkload([(0.0, 10, 3)]),
        kv_blocks=101,
    )
    info = raw.instances
    assert [i.instance_id for i in info] == [0, 1, 2, 3]
    assert [i.replica for i in info] == [0, 0, 2, 2]
    assert [i.devices for i in info] == [2, 2, 2, 2]
    assert sum(i.devices for i in info) == 2 * 2 * 2  # instances x tp x pp, counted once


def test_sim_pp_virtual_engine_gets_share_of_kv_and_max_num_seqs():
    from servesim.sim.cluster import Cluster

    cl = Cluster(make_cfg(pp=3, seqs=2), step_fn=COST, workload=ListWorkload([(0.0, 10, 3)]),
                 kv_blocks=100)  # fmt: skip
    assert [x.kv.total for x in cl.instances] == [33, 33, 33]
    assert [x.max_seqs for x in cl.instances] == [1, 1, 1]  # 2 // 3, at least 1
    assert [x.ff for x in cl.instances] == [False, False, False]


def test_sim_pp_pp1_replica_is_its_own_instance():
    raw = run(make_cfg(pp=1, instances=3), step_fn=COST, workload=ListWorkload([(0.0, 10, 3)]),
              kv_blocks=100)  # fmt: skip
    assert [(i.instance_id, i.replica, i.devices) for i in raw.instances] == [
        (0, 0, 1), (1, 1, 1), (2, 2, 1)
    ]  # fmt: skip


def test_sim_pp_too_few_kv_blocks_to_split_raises_spec_error():
    with pytest.raises(SpecError, match="virtual engines"):
        run(make_cfg(pp=2), step_fn=COST, workload=ListWorkload([(0.0, 1, 1)]), kv_blocks=1)


def test_sim_pp_round_robin_spreads_over_replicas_first():
    wl = ListWorkload([(0.001 * k, 10, 2) for k in range(4)])
    raw = run(make_cfg(pp=2, instances=2, router="round_robin"), step_fn=COST, workload=wl,
              kv_blocks=100)  # fmt: skip
    assert list(raw.requests["instance"]) == [0, 2, 1, 3]


def test_sim_pp2_energy_pool_devices_counted_once():
    from servesim import energy

    cfg = make_cfg(pp=2, tp=2, instances=2)
    raw = run(cfg, step_fn=COST, workload=closed(16, 64), kv_blocks=1000)
    e = energy.account(raw, cfg)
    assert e["device_s"] == pytest.approx(8 * e["energy_duration_s"])
    # saturated: every stage of both replicas is busy nearly all the time
    assert e["idle_fraction"] < 0.1


def test_sim_pp2_real_cost_model_throughput_gain_and_latency(monkeypatch):
    cfg = make_cfg(pp=2)
    new = run(cfg, workload=closed(256, 1024, prompt=1024, output=256))
    low = run(cfg, workload=ListWorkload([(0.0, 64, 9)]))
    one_batch_in_flight(monkeypatch)
    old = run(cfg, workload=closed(256, 1024, prompt=1024, output=256))
    old_low = run(cfg, workload=ListWorkload([(0.0, 64, 9)]))
    assert 1.5 < output_rate(new) / output_rate(old) <= 2.0
    assert low.requests["finish_s"][0] == pytest.approx(old_low.requests["finish_s"][0], rel=1e-12)


def test_sim_pp2_step_log_runs_mode_keeps_requests_identical():
    import dataclasses

    cfg = make_cfg(pp=2, instances=2)
    runs = dataclasses.replace(cfg, sim=dataclasses.replace(cfg.sim, step_log="runs"))
    wl = [(0.002 * k, 30 + k, 40) for k in range(24)]
    a = run(cfg, step_fn=COST, workload=ListWorkload(wl), kv_blocks=400)
    b = run(runs, step_fn=COST, workload=ListWorkload(wl), kv_blocks=400)
    for k in a.requests:
        assert np.array_equal(a.requests[k], b.requests[k]), k
    assert len(b.steps["instance"]) < len(a.steps["instance"])
    assert int(b.steps["steps"].sum()) == len(a.steps["instance"])
