"""Device power from per-step utilisation, and energy over the whole simulated time.

Power of one device during one engine step (watts):

    u_c  = step FLOPs / (devices x peak FLOP/s x duration)        compute utilisation, in [0, 1]
    u_m  = step HBM bytes / (devices x memory bandwidth x duration)  memory utilisation, in [0, 1]
    P    = idle_W + (tdp_W - idle_W) x clip(active_floor + compute_weight x u_c + memory_weight x u_m, 0, 1)

Between steps, and for every device of the deployment that has no step at that moment, a device
draws idle_W. Energy integrates from 0 to raw.sim_end_s for every device, busy or not. Hosts (CPUs,
NICs, switches, fans: host_W_per_node / devices_per_node for each device of a pool) draw a constant
power over the whole time, and the facility multiplies this IT energy by the PUE
(servesim.specs.cost.CostSpec.pue).

Why this shape (docs/energy-and-cost.md has the long version):
- Splitwise (Patel et al., ISCA 2024) characterises LLM inference: a compute-intensive prompt
  phase and a memory-intensive token phase with distinct power characteristics; token generation
  underuses compute and can run at lower power. POLCA (Patel et al., 2023, "Characterizing
  power management opportunities for LLMs in the cloud") finds average and peak power of inference
  well below provisioned power. So power rises with compute utilisation much faster than with
  memory traffic.
- Ma et al. 2026 ("The Illusion of Power Capping in LLM Decode", arXiv 2605.11999) measure decode
  on a 700 W H200 at 137-300 W across attention variants: memory-bound decode never reaches the cap.
- TokenPowerBench (Niu et al., AAAI 2026, arXiv 2512.03024) reports energy per token from GPU-,
  node- and system-level meters, which is why host power and PUE are separate terms here.

Default weights (POWER_MODEL_DEFAULTS) are set so that a decode step at ~80% of HBM bandwidth and
low compute draws ~37% of the way from idle to TDP (~310 W on a 700 W/80 W device, the top of
the decode range above), and a prefill step at ~65% compute utilisation reaches TDP. They are
calibrated to those two published observations, not fitted to a power trace; a profile may
override any of them in its `power_model` block.

Everything is vectorised over the step arrays (the step log can have millions of rows).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from servesim.accounting.instances import instance_table as shared_instance_table
from servesim.accounting.summary import Energy, PoolEnergy
from servesim.specs.common import SpecError
from servesim.specs.dtypes import DTYPE_BYTES

# key -> (default, meaning). Profiles override per device in `power_model:`.
POWER_MODEL_DEFAULTS: dict[str, tuple[float, str]] = {
    "active_floor": (0.05, "fraction of (TDP - idle) drawn by any busy step (clocks up, launches)"),
    "compute_weight": (1.3, "fraction of (TDP - idle) per unit of compute utilisation"),
    "memory_weight": (0.4, "fraction of (TDP - idle) per unit of HBM-bandwidth utilisation"),
}

J_PER_KWH = 3.6e6


def check_power_model(hw: Any) -> None:
    """A profile's `power.model` keys must be ones this module reads (a typo is not a default)."""
    for k, _ in getattr(hw, "power_model", ()) or ():
        if k not in POWER_MODEL_DEFAULTS:
            allowed = ", ".join(POWER_MODEL_DEFAULTS)
            raise SpecError(
                getattr(hw, "name", "hardware"),
                f"power.model.{k}",
                k,
                "unknown key; allowed: " + allowed,
            )


def power_param(hw: Any, key: str) -> float:
    """A power-model parameter of a hardware profile, or its default."""
    for k, v in getattr(hw, "power_model", ()) or ():
        if k == key:
            return float(v)
    return POWER_MODEL_DEFAULTS[key][0]


def step_power_W(u_compute, u_memory, idle_W, tdp_W, floor, wc, wm):
    """Per-device power for arrays of steps (all arguments broadcast)."""
    frac = np.clip(floor + wc * np.asarray(u_compute) + wm * np.asarray(u_memory), 0.0, 1.0)
    return idle_W + (tdp_W - idle_W) * frac


class Instances(NamedTuple):
    """Per-instance parameters, aligned arrays sorted by instance id."""

    ids: np.ndarray
    pool: np.ndarray  # index into `labels`
    devices: np.ndarray
    idle_W: np.ndarray
    tdp_W: np.ndarray
    peak_flops: np.ndarray  # per device, FLOP/s
    mem_bw: np.ndarray  # per device, bytes/s
    floor: np.ndarray
    wc: np.ndarray
    wm: np.ndarray
    labels: tuple[str, ...]  # pool labels, in deployment order
    roles: tuple[str, ...]
    hardware: tuple[Any, ...]  # HardwareSpec per pool


def pool_labels(pools: Sequence[Any]) -> tuple[str, ...]:
    """Pool names used in keys: the role, with its index when two pools share a role."""
    roles = [str(p.role) for p in pools]
    return tuple(r if roles.count(r) == 1 else f"{r}{i}" for i, r in enumerate(roles))


def instance_table(raw: Any, cfg: Any) -> Instances:
    """Instances of the run (accounting/instances.py's table) with their pool index, devices and
    the power parameters of their pool's hardware; a number the engine's record lacks (a run
    read back from disk) comes from the profile."""
    pools = tuple(cfg.deployment.pools)
    labels, roles = pool_labels(pools), tuple(str(p.role) for p in pools)
    for p in pools:
        check_power_model(p.hardware)
    table = shared_instance_table(raw)
    pidx = np.asarray([_pool_index(p, labels, roles) for p in table.pool_ref], dtype=np.int64)
    hws = [pools[i].hardware for i in pidx.tolist()]
    dtypes = getattr(cfg, "dtypes", None)

    def column(values: np.ndarray, fallback: Any) -> np.ndarray:
        # a missing (NaN) or zero number takes the profile's
        out = [v if v == v and v != 0 else fallback(hw) for v, hw in zip(values.tolist(), hws)]
        return np.asarray(out, dtype=np.float64)

    def param(key: str) -> np.ndarray:
        return np.asarray([power_param(hw, key) for hw in hws], dtype=np.float64)

    return Instances(
        table.ids,
        pidx,
        table.devices,
        np.asarray(
            [hw.idle_W if v != v else v for v, hw in zip(table.idle_W.tolist(), hws)],
            dtype=np.float64,
        ),
        column(table.tdp_W, lambda hw: hw.tdp_W),
        column(table.peak_flops, lambda hw: _fallback_peak(hw, dtypes)),
        column(table.mem_bw, lambda hw: hw.memory_bw_GBps * 1e9),
        param("active_floor"),
        param("compute_weight"),
        param("memory_weight"),
        labels=labels,
        roles=roles,
        hardware=tuple(p.hardware for p in pools),
    )


def _pool_index(pool: Any, labels: tuple[str, ...], roles: tuple[str, ...]) -> int:
    if isinstance(pool, (int, np.integer)) and 0 <= int(pool) < len(labels):
        return int(pool)
    for names in (labels, roles):
        if pool in names:
            return names.index(pool)
    raise SpecError(
        "run", "instances.pool", pool, "names no pool of the deployment: " + ", ".join(labels)
    )


def _fallback_peak(hw: Any, dtypes: Any) -> float:
    """Peak FLOP/s of the compute dtype (the wider of weights and activations) when the engine's
    instance record does not carry it (runs read back from disk)."""
    order = []
    if dtypes is not None:
        w, a = getattr(dtypes, "weights", "bf16"), getattr(dtypes, "activations", "bf16")
        order.append(w if DTYPE_BYTES.get(w, 2) >= DTYPE_BYTES.get(a, 2) else a)
    for dtype in (*order, "bf16", "fp16", "fp8"):
        try:
            return hw.peak_flops(dtype)
        except SpecError:
            continue
    return 1.0


def step_positions(steps: Mapping[str, np.ndarray], inst: Instances) -> np.ndarray:
    """Row -> index into the instance table."""
    ids = np.asarray(steps["instance"], dtype=np.int64)
    pos = np.searchsorted(inst.ids, ids)
    pos = np.clip(pos, 0, max(len(inst.ids) - 1, 0))
    if len(ids) and (len(inst.ids) == 0 or np.any(inst.ids[pos] != ids)):
        raise SpecError(
            "run", "steps.instance", "?", "step log names an instance not in raw.instances"
        )
    return pos


def horizon_s(raw: Any) -> float:
    """Simulated time energy integrates over: 0 .. sim_end_s (at least the end of the last step)."""
    t = float(getattr(raw, "sim_end_s", 0.0) or 0.0)
    steps = raw.steps
    if len(steps.get("start_s", ())):
        t = max(t, float(np.max(np.asarray(steps["start_s"]) + np.asarray(steps["duration_s"]))))
    return t


class StepPower(NamedTuple):
    pos: np.ndarray  # instance index per step
    start: np.ndarray  # seconds
    dur: np.ndarray  # seconds
    power_W: np.ndarray  # per device


def step_power(raw: Any, inst: Instances) -> StepPower:
    steps = raw.steps
    pos = step_positions(steps, inst)
    dur = np.asarray(steps.get("duration_s", np.zeros(len(pos))), dtype=np.float64)
    start = np.asarray(steps.get("start_s", np.zeros(len(pos))), dtype=np.float64)
    if not len(pos):
        return StepPower(pos, start, dur, np.zeros(0))
    flops = np.asarray(steps["flops"], dtype=np.float64)
    nbytes = np.asarray(steps["bytes"], dtype=np.float64)
    p = np.empty(len(pos))
    # element by element, so in segments: the same values without a dozen step-long temporaries
    for a in range(0, len(pos), _SEGMENT):
        b = a + _SEGMENT
        p[a:b] = _segment_power(inst, pos[a:b], dur[a:b], flops[a:b], nbytes[a:b])
    return StepPower(pos, start, dur, p)


_SEGMENT = 1 << 16  # step rows per segment of the elementwise step arithmetic


def _segment_power(inst: Instances, pos, dur, flops, nbytes) -> np.ndarray:
    d = inst.devices[pos].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = np.where(dur > 0, d * dur, np.inf)
        u_c = flops / (denom * inst.peak_flops[pos])
        u_m = nbytes / (denom * inst.mem_bw[pos])
    u_c = np.clip(np.nan_to_num(u_c), 0.0, 1.0)
    u_m = np.clip(np.nan_to_num(u_m), 0.0, 1.0)
    return step_power_W(
        u_c, u_m, inst.idle_W[pos], inst.tdp_W[pos], inst.floor[pos], inst.wc[pos], inst.wm[pos]
    )


def _segmented(n: int, fn: Any) -> np.ndarray:
    """An n-long float array filled ``fn(a, b)`` segment by segment (elementwise arithmetic)."""
    out = np.empty(n)
    for a in range(0, n, _SEGMENT):
        b = min(a + _SEGMENT, n)
        out[a:b] = fn(a, b)
    return out


def token_totals(raw: Any) -> tuple[float, float]:
    """(input, output) tokens of the finished requests."""
    req = raw.requests
    n_in = float(np.sum(np.asarray(req.get("prompt_tokens", ()), dtype=np.float64)))
    n_out = float(np.sum(np.asarray(req.get("output_tokens", ()), dtype=np.float64)))
    return n_in, n_out


def pool_nodes(inst: Instances, pidx: int) -> float:
    """Node share of a pool: devices / devices_per_node. Fractional on purpose: a pool on part of a
    node (one cloud GPU of an 8-GPU host) is charged its share of the host, not the whole host."""
    devices = float(inst.devices[inst.pool == pidx].sum())
    per_node = max(int(getattr(inst.hardware[pidx], "devices_per_node", 1) or 1), 1)
    return devices / per_node


def account(raw: Any, cfg: Any) -> dict[str, Any]:
    """Energy summary of a run: flat keys, SI units in names; per pool under energy.<pool>.*."""
    return measure(raw, cfg).flat()


def measure(raw: Any, cfg: Any) -> Energy:
    """The typed energy section of a run (summary.Energy)."""
    inst = instance_table(raw, cfg)
    sp = step_power(raw, inst)
    T = horizon_s(raw)
    pue = float(getattr(getattr(cfg, "cost", None), "pue", 1.0) or 1.0)
    n = len(inst.ids)
    busy_s = np.bincount(sp.pos, weights=sp.dur, minlength=n)[:n]
    weights = _segmented(
        len(sp.pos), lambda a, b: sp.power_W[a:b] * sp.dur[a:b] * inst.devices[sp.pos[a:b]]
    )
    busy_j = np.bincount(sp.pos, weights=weights, minlength=n)[:n]
    del weights
    idle_s = np.maximum(T - busy_s, 0.0)
    dev_j = busy_j + inst.idle_W * inst.devices * idle_s
    n_in, n_out = token_totals(raw)
    pools: dict[str, PoolEnergy] = {}
    tot = {"device": 0.0, "host": 0.0, "dev_s": 0.0, "busy_dev_s": 0.0}
    for pidx, label in enumerate(inst.labels):
        m = inst.pool == pidx
        host_j = (
            float(getattr(inst.hardware[pidx], "host_W_per_node", 0.0) or 0.0)
            * pool_nodes(inst, pidx)
            * T
        )
        pdev_j = float(dev_j[m].sum())
        dev_s = float((inst.devices[m] * T).sum())
        busy_dev_s = float((inst.devices[m] * np.minimum(busy_s[m], T)).sum())
        tok = n_in if inst.roles[pidx] == "prefill" else n_out
        pools[label] = _pool_energy(
            pdev_j, host_j, pue, T, dev_s, busy_dev_s, tok, inst.roles[pidx]
        )
        tot["device"] += pdev_j
        tot["host"] += host_j
        tot["dev_s"] += dev_s
        tot["busy_dev_s"] += busy_dev_s
    it_j = tot["device"] + tot["host"]
    fac_j = it_j * pue
    peak_it = _peak_it_W(inst, sp, tot["host"] / T if T > 0 else 0.0)
    return Energy(
        pools=pools,
        energy_j=fac_j,
        energy_kwh=fac_j / J_PER_KWH,
        energy_device_kwh=tot["device"] / J_PER_KWH,
        energy_host_kwh=tot["host"] / J_PER_KWH,
        energy_it_kwh=it_j / J_PER_KWH,
        pue=pue,
        power_avg_W=fac_j / T if T > 0 else None,
        power_it_avg_W=it_j / T if T > 0 else None,
        power_device_avg_W=tot["device"] / T if T > 0 else None,
        power_peak_W=peak_it * pue,
        j_per_output_token=_ratio(fac_j, n_out),
        j_per_input_token=_ratio(fac_j, n_in),
        j_per_total_token=_ratio(fac_j, n_in + n_out),
        tokens_per_s_per_W=_ratio(n_out, fac_j),  # (tokens/s)/W == tokens/J
        idle_fraction=1.0 - tot["busy_dev_s"] / tot["dev_s"] if tot["dev_s"] > 0 else 1.0,
        device_s=tot["dev_s"],
        device_busy_s=tot["busy_dev_s"],
        energy_duration_s=T,
    )


def _pool_energy(dev_j, host_j, pue, T, dev_s, busy_dev_s, tokens, role) -> PoolEnergy:
    fac = (dev_j + host_j) * pue
    # prefill pools are charged per input token, every other pool per output token
    return PoolEnergy(
        energy_kwh=fac / J_PER_KWH,
        energy_device_kwh=dev_j / J_PER_KWH,
        energy_host_kwh=host_j / J_PER_KWH,
        power_avg_W=fac / T if T > 0 else None,
        idle_fraction=1.0 - busy_dev_s / dev_s if dev_s > 0 else 1.0,
        j_per_token=_ratio(fac, tokens),
        charged_per="input" if role == "prefill" else "output",
    )


def _peak_it_W(inst: Instances, sp: StepPower, host_W: float) -> float:
    """Highest simultaneous IT power: all devices idle + hosts + the busiest overlap of steps."""
    base = float((inst.idle_W * inst.devices).sum()) + host_W
    if not len(sp.pos):
        return base

    def extra_of(a: int, b: int) -> np.ndarray:
        return (sp.power_W[a:b] - inst.idle_W[sp.pos[a:b]]) * inst.devices[sp.pos[a:b]]

    if _steps_in_turn(sp.start, sp.dur):
        return base + max(0.0, _interleaved_peak(len(sp.pos), extra_of))
    extra = extra_of(0, len(sp.pos))
    # ends first, then a stable sort: at equal times a step that ends is counted before one that
    # starts, so back-to-back steps of one instance never look simultaneous
    t = np.concatenate([sp.start + sp.dur, sp.start])
    delta = np.concatenate([-extra, extra])
    order = np.argsort(t, kind="stable")
    return base + max(0.0, float(np.max(np.cumsum(delta[order]))))


def _steps_in_turn(start: np.ndarray, dur: np.ndarray) -> bool:
    """Whether the rows' steps run one after another (one instance, or instances in turn): each
    lasts > 0 and ends no later than the next starts. Then start_0, end_0, start_1, ... is the
    order _peak_it_W's stable sort gives (ends before starts at equal times)."""
    n = len(start)
    for a in range(0, n, _SEGMENT):
        b = min(a + _SEGMENT, n)
        end = start[a:b] + dur[a:b]
        if not np.all(start[a:b] < end):
            return False
        nxt = start[a + 1 : b + 1]
        if not np.all(end[: nxt.size] <= nxt):
            return False
    return True


def _interleaved_peak(n: int, extra_of: Any) -> float:
    """max(np.cumsum([e_0, -e_0, e_1, -e_1, ...])) built segment by segment: each segment's
    cumsum starts from the previous total (np.cumsum adds in order), so the partial sums and
    their maximum are the same bits."""
    peak, carry = -math.inf, None
    for a in range(0, n, _SEGMENT):
        b = min(a + _SEGMENT, n)
        e = extra_of(a, b)
        d = np.empty(2 * e.size + (carry is not None))
        k = 0 if carry is None else 1
        if carry is not None:
            d[0] = carry
        d[k::2] = e
        d[k + 1 :: 2] = -e
        c = np.cumsum(d)
        peak = max(peak, float(np.max(c)))
        carry = c[-1]
    return peak


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 else None
