"""Time to train, GPU-hours, energy and cost of a training run, with the serving power model
(servesim.energy) and the project's pricing and TCO (servesim.costing)."""

from __future__ import annotations

import dataclasses
from typing import Any

from servesim import costing, energy
from servesim.specs.cost import CostSpec
from servesim.specs.hardware import HardwareSpec

J_PER_KWH = energy.J_PER_KWH


def device_power_W(est: Any, hw: HardwareSpec) -> tuple[float, float, float]:
    """(device W, compute utilisation, memory utilisation) while training: the serving power model
    with u_c = hardware FLOPs / peak (HFU) and u_m = the share of the step spent in memory-bound
    operators times the bandwidth they reach."""
    energy.check_power_model(hw)
    frame = est.breakdown
    mem_s = float(frame["exposed_s"].to_numpy()[frame["bound"].to_numpy() == "memory"].sum())
    u_m = min(1.0, mem_s / est.step_s) if est.step_s > 0 else 0.0
    u_c = min(1.0, est.hfu)
    watts = float(energy.step_power_W(
        u_c, u_m, hw.idle_W, hw.tdp_W, energy.power_param(hw, "active_floor"),
        energy.power_param(hw, "compute_weight"), energy.power_param(hw, "memory_weight"),
    ))  # fmt: skip
    return watts, u_c, u_m


def training_cost(est: Any, hw: HardwareSpec, tokens: float, spec: CostSpec, step_s: float,
                  flops_per_token: float) -> Any:  # fmt: skip
    """Fill the time-to-train fields: wall time = tokens / cluster tokens per second (whole steps),
    GPU-hours = devices x wall time, energy = (device W + host share) x PUE x time, cost = GPU-hours
    x $/device-hour (cloud/reserved/spot pricing from the catalog or profile) or the TCO rate."""
    layout = est.layout
    steps = -(-tokens // layout.tokens_per_step)
    wall = steps * step_s
    gpu_h = layout.devices * wall / 3600.0
    dev_W, u_c, u_m = device_power_W(est, hw)
    host_W = (hw.host_W_per_node or 0.0) / max(hw.devices_per_node or 1, 1)
    kwh = (dev_W + host_W) * layout.devices * wall * spec.pue / J_PER_KWH
    detail: dict[str, Any] = {
        "steps": int(steps), "device_W": dev_W, "host_W_per_device": host_W, "pue": spec.pue,
        "u_compute": u_c, "u_memory": u_m, "pricing": spec.pricing,
        "model_flops_total": flops_per_token * tokens,
    }  # fmt: skip
    cost = None
    if spec.pricing == "tco":
        t = costing.tco_breakdown(hw, layout.devices, dataclasses.replace(spec, utilisation=u_c))
        rate = t["total_usd_per_device_hour"]
        detail.update(usd_per_device_hour=rate, price_source="TCO (servesim.costing.tco_breakdown)")
        cost = rate * gpu_h
    else:
        q = costing.quote(hw, spec, where="train cost")
        detail.update(usd_per_device_hour=q.usd_per_device_hour, price_source=q.source,
                      price_provider=q.provider, price_date=q.date)  # fmt: skip
        if q.usd_per_device_hour is not None:
            cost = q.usd_per_device_hour * gpu_h
        else:
            detail["note"] = f"no {q.column} price for {hw.name}; set cost.price_hour_usd"
    return dataclasses.replace(est, tokens=float(tokens), time_to_train_s=wall, gpu_hours=gpu_h,
                               energy_kwh=kwh, cost_usd=cost, cost_detail=detail)  # fmt: skip
