"""Energy from the step log: bounds, idle deployments, monotonicity, pools adding up, peak power.

Runs are hand-made RawRun-shaped objects with the contract's columns (docs/internals.md)."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace as NS

import numpy as np
import pytest

from servesim import energy
from servesim.specs import SpecError
from servesim.specs.config import Parallelism, PoolSpec
from servesim.specs.cost import CostSpec
from servesim.specs.hardware import load_hardware

H100 = load_hardware("h100-sxm")
A100 = load_hardware("a100-sxm")


def make_cfg(pools, cost=None):
    return NS(deployment=NS(pools=tuple(pools)), cost=cost or CostSpec(), dtypes=None, model=None)


def make_run(cfg, steps, sim_end_s, prompt=(100,), output=(10,)):
    """Instances numbered in pool order; steps: list of (instance, start, dur, flops, bytes, prefill, decode)."""
    infos, i = [], 0
    for pidx, pool in enumerate(cfg.deployment.pools):
        hw = pool.hardware
        for _ in range(pool.instances):
            d = pool.parallelism.devices
            infos.append(NS(instance_id=i, pool=pidx, role=pool.role, hardware=hw.name, devices=d,
                            peak_flops=hw.peak_flops("bf16"), mem_bw=hw.memory_bw_GBps * 1e9,
                            tdp_W=hw.tdp_W, idle_W=hw.idle_W))  # fmt: skip
            i += 1
    cols = ("instance", "start_s", "duration_s", "flops", "bytes", "prefill_tokens", "decode_seqs")
    arr = np.array(steps, dtype=np.float64).reshape(-1, len(cols))
    st = {c: arr[:, k] for k, c in enumerate(cols)}
    st["instance"] = st["instance"].astype(np.int64)
    req = {"prompt_tokens": np.array(prompt, np.int64), "output_tokens": np.array(output, np.int64)}
    return NS(instances=infos, steps=st, requests=req, sim_end_s=float(sim_end_s), transfers={})


def colocated(n=2, tp=2, hw=H100, cost=None):
    return make_cfg(
        [PoolSpec(role="colocated", hardware=hw, instances=n, parallelism=Parallelism(tp=tp))], cost
    )


def peak(hw, d, dur, frac_c=1.0):
    return frac_c * hw.peak_flops("bf16") * d * dur


def test_energy_bounds_device_energy_between_idle_and_tdp():
    cfg = colocated()
    steps = [(0, 0.0, 1.0, peak(H100, 2, 1.0, 0.3), 1e12, 512, 0), (1, 0.5, 2.0, 1e13, 4e12, 0, 64)]
    raw = make_run(cfg, steps, sim_end_s=10.0)
    e = energy.account(raw, cfg)
    dev_j = e["energy_device_kwh"] * energy.J_PER_KWH
    devices, T = 4, 10.0
    assert H100.idle_W * devices * T <= dev_j <= H100.tdp_W * devices * T
    host_j = H100.host_W_per_node / H100.devices_per_node * devices * T
    assert e["energy_host_kwh"] * energy.J_PER_KWH == pytest.approx(host_j)
    assert e["energy_it_kwh"] == pytest.approx(e["energy_device_kwh"] + e["energy_host_kwh"])
    assert e["energy_kwh"] == pytest.approx(e["energy_it_kwh"] * cfg.cost.pue)
    assert e["energy_j"] == pytest.approx(e["energy_kwh"] * energy.J_PER_KWH)


def test_energy_idle_deployment_burns_idle_power_only():
    cfg = colocated(cost=CostSpec(pue=1.0))
    raw = make_run(cfg, [], sim_end_s=100.0, prompt=(), output=())
    e = energy.account(raw, cfg)
    dev_j = e["energy_device_kwh"] * energy.J_PER_KWH
    assert dev_j == pytest.approx(H100.idle_W * 4 * 100.0)
    assert e["idle_fraction"] == 1.0
    assert e["j_per_output_token"] is None
    base = H100.idle_W * 4 + H100.host_W_per_node / 2
    assert e["power_peak_W"] == pytest.approx(base)
    assert e["power_avg_W"] == pytest.approx(base)


def test_energy_zero_work_steps_draw_floor_above_idle():
    cfg = colocated(n=1, tp=1, cost=CostSpec(pue=1.0))
    raw = make_run(cfg, [(0, 0.0, 10.0, 0.0, 0.0, 0, 1)], sim_end_s=10.0)
    e = energy.account(raw, cfg)
    floor = energy.POWER_MODEL_DEFAULTS["active_floor"][0]
    expect = H100.idle_W + (H100.tdp_W - H100.idle_W) * floor
    assert e["energy_device_kwh"] * energy.J_PER_KWH == pytest.approx(expect * 10.0)
    assert e["idle_fraction"] == 0.0


def test_energy_more_load_more_energy():
    cfg = colocated(n=1, tp=1)
    light = make_run(cfg, [(0, 0.0, 1.0, peak(H100, 1, 1.0, 0.1), 1e11, 16, 0)], sim_end_s=20.0)
    heavy = make_run(cfg, [(0, 0.0, 1.0, peak(H100, 1, 1.0, 0.6), 2e12, 4096, 0)], sim_end_s=20.0)
    longer = make_run(cfg, [(0, 0.0, 5.0, peak(H100, 1, 5.0, 0.6), 1e13, 4096, 0)], sim_end_s=20.0)
    e = [energy.account(r, cfg)["energy_kwh"] for r in (light, heavy, longer)]
    assert e[0] < e[1] < e[2]


def test_step_power_saturates_at_tdp_and_is_monotone():
    u = np.linspace(0, 1, 11)
    p = energy.step_power_W(u, 0.5 * u, 80.0, 700.0, 0.05, 1.3, 0.4)
    assert np.all(np.diff(p) >= 0)
    assert p[0] == pytest.approx(80.0 + 620.0 * 0.05)
    assert p[-1] == pytest.approx(700.0)


def test_energy_power_model_override_from_profile_is_used():
    hw = dataclasses.replace(
        H100, power_model=(("active_floor", 1.0), ("compute_weight", 0.0), ("memory_weight", 0.0))
    )
    cfg = colocated(n=1, tp=1, hw=hw, cost=CostSpec(pue=1.0))
    raw = make_run(cfg, [(0, 2.0, 3.0, 1.0, 1.0, 8, 0)], sim_end_s=10.0)
    e = energy.account(raw, cfg)
    expect = hw.tdp_W * 3.0 + hw.idle_W * 7.0
    assert e["energy_device_kwh"] * energy.J_PER_KWH == pytest.approx(expect)


def test_energy_pools_add_up_to_whole_and_charge_prefill_per_input_token():
    pools = [
        PoolSpec(role="prefill", hardware=H100, instances=1, parallelism=Parallelism(tp=2)),
        PoolSpec(role="decode", hardware=A100, instances=2, parallelism=Parallelism(tp=1)),
    ]
    cfg = make_cfg(pools)
    steps = [(0, 0.0, 1.0, peak(H100, 2, 1.0, 0.5), 1e12, 2048, 0),
             (1, 1.0, 2.0, 1e12, 3e12, 0, 32), (2, 1.5, 2.0, 1e12, 2e12, 0, 16)]  # fmt: skip
    raw = make_run(cfg, steps, sim_end_s=5.0, prompt=(1000, 1048), output=(20, 28))
    e = energy.account(raw, cfg)
    parts = e["energy.prefill.energy_kwh"] + e["energy.decode.energy_kwh"]
    assert parts == pytest.approx(e["energy_kwh"])
    assert e["pool.decode.energy_kwh"] == e["energy.decode.energy_kwh"]
    fac_j = e["energy.prefill.energy_kwh"] * energy.J_PER_KWH
    assert e["energy.prefill.j_per_input_token"] == pytest.approx(fac_j / 2048)
    assert "energy.decode.j_per_output_token" in e


def test_energy_peak_counts_overlapping_steps_only():
    cfg = colocated(n=2, tp=1, cost=CostSpec(pue=1.0))
    full = 1.0 * H100.peak_flops("bf16")
    overlap = make_run(
        cfg, [(0, 0.0, 1.0, full, 0, 1, 0), (1, 0.5, 1.0, full, 0, 1, 0)], sim_end_s=2.0
    )
    touching = make_run(
        cfg, [(0, 0.0, 1.0, full, 0, 1, 0), (1, 1.0, 1.0, full, 0, 1, 0)], sim_end_s=2.0
    )
    base = 2 * H100.idle_W + 2 * H100.host_W_per_node / 8
    extra = H100.tdp_W - H100.idle_W
    assert energy.account(overlap, cfg)["power_peak_W"] == pytest.approx(base + 2 * extra)
    assert energy.account(touching, cfg)["power_peak_W"] == pytest.approx(base + extra)


def test_energy_step_for_unknown_instance_raises_specerror():
    cfg = colocated(n=1)
    raw = make_run(cfg, [(7, 0.0, 1.0, 1.0, 1.0, 1, 0)], sim_end_s=2.0)
    with pytest.raises(SpecError, match="instance"):
        energy.account(raw, cfg)


def test_energy_large_step_log_is_vectorised_and_finite():
    cfg = colocated(n=4, tp=2)
    n = 200_000
    rng = np.random.default_rng(0)
    inst = rng.integers(0, 4, n)
    start = np.sort(rng.uniform(0, 1000, n))
    raw = make_run(cfg, [], sim_end_s=1001.0)
    raw.steps = {"instance": inst, "start_s": start, "duration_s": np.full(n, 0.004),
                 "flops": rng.uniform(0, 1e13, n), "bytes": rng.uniform(0, 1e11, n),
                 "prefill_tokens": rng.integers(0, 100, n), "decode_seqs": rng.integers(0, 64, n)}  # fmt: skip
    e = energy.account(raw, cfg)
    assert np.isfinite(e["energy_kwh"]) and 0.0 < e["idle_fraction"] < 1.0


def test_energy_unknown_power_model_key_raises_specerror():
    hw = dataclasses.replace(H100, power_model=(("compute_wieght", 1.0),))
    cfg = colocated(n=1, tp=1, hw=hw)
    with pytest.raises(SpecError, match="compute_weight"):
        energy.account(make_run(cfg, [], sim_end_s=1.0), cfg)
