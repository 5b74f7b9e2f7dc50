"""Per-pool quantities from the step log that pricing needs: devices, busy device-seconds, the
share of a pool's cost charged to input tokens, and the device-seconds an autoscaler bills.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from servesim.accounting import energy
from servesim.accounting.stats import pairwise_sum
from servesim.specs.cost import CostSpec


class PoolUse(NamedTuple):
    label: str
    role: str
    hardware: Any
    devices: int  # all devices of the pool
    device_s: float  # devices x horizon
    busy_device_s: float
    input_share: float  # share of the pool's cost charged to input tokens


def pool_usage(raw: Any, inst: energy.Instances, sp: energy.StepPower, T: float) -> list[PoolUse]:
    """Devices, busy time and the input/output split of every pool.

    Split: prefill pools -> input tokens, decode/attention/ffn pools -> output tokens. A colocated
    pool is split by the share of its busy time spent on prefill: each step's duration is divided
    between prefill and decode in proportion to its prefill tokens and decoding sequences (a
    pure-prefill step is all input, a pure-decode step all output, a chunked mixed step in between).
    """
    steps = raw.steps
    n = len(sp.pos)
    pf = np.asarray(steps.get("prefill_tokens", np.zeros(n)))  # as float64 in _split
    dc = np.asarray(steps.get("decode_seqs", np.zeros(n)))
    n_in, n_out = energy.token_totals(raw)
    fallback = n_in / (n_in + n_out) if n_in + n_out > 0 else 0.5
    out = []
    for pidx, label in enumerate(inst.labels):
        m_inst = inst.pool == pidx
        m_step = inst.pool[sp.pos] == pidx if n else np.zeros(0, bool)
        whole = bool(m_step.all())  # every step is the pool's: no masked copies
        role = inst.roles[pidx]
        busy = np.bincount(sp.pos if whole else sp.pos[m_step],
                           weights=sp.dur if whole else sp.dur[m_step],
                           minlength=len(inst.ids))  # fmt: skip
        busy_dev_s = (
            float((np.minimum(busy[m_inst], T) * inst.devices[m_inst]).sum())
            if len(inst.ids)
            else 0.0
        )
        if role == "prefill":
            share = 1.0
        elif role == "colocated":
            share = _input_share(pf, dc, sp.dur, None if whole else m_step, fallback)
        else:
            share = 0.0
        devices = int(inst.devices[m_inst].sum())
        out.append(
            PoolUse(label, role, inst.hardware[pidx], devices, devices * T, busy_dev_s, share)
        )
    return out


def _split(pf: np.ndarray, dc: np.ndarray, dur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(prefill fraction, NaN for an empty step; duration weight, 0 for an empty step)."""
    pf, dc = np.asarray(pf, dtype=np.float64), np.asarray(dc, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(pf + dc > 0, pf / (pf + dc), np.nan)
    return frac, np.where(np.isnan(frac), 0.0, dur)


def _input_share(pf, dc, dur, mask: np.ndarray | None, fallback: float) -> float:
    """Duration-weighted prefill fraction of the steps in ``mask`` (None: all, taken segment
    by segment with numpy's own pairwise sums: the same bits as the whole-array sums)."""
    if mask is not None:
        frac, tok_w = _split(pf[mask], dc[mask], dur[mask])
        w = float(tok_w.sum())
        return float((np.nan_to_num(frac) * tok_w).sum() / w) if w > 0 else fallback
    w = pairwise_sum(len(dur), lambda a, b: _split(pf[a:b], dc[a:b], dur[a:b])[1])

    def product(a: int, b: int) -> np.ndarray:
        frac, tok_w = _split(pf[a:b], dc[a:b], dur[a:b])
        return np.nan_to_num(frac) * tok_w

    return float(pairwise_sum(len(dur), product) / w) if w > 0 else fallback


def autoscaled_device_s(raw: Any, inst: energy.Instances, sp: energy.StepPower, T: float,
                        spec: CostSpec) -> np.ndarray:  # fmt: skip
    """Billed device-seconds per pool under autoscaling.

    A replica is billed from ``scale_up_delay_s`` before each busy period (it must be up when the
    work arrives) until ``idle_timeout_s`` after its last step; overlapping windows merge. At every
    moment at least ``min_replicas`` replicas of each pool are billed (capped at the pool size).
    This is a billing view of the simulated busy periods: the router still spread load over every
    replica, so it is a lower bound on what a real autoscaler, which packs load, would bill.
    """
    n_pools = len(inst.labels)
    billed = np.zeros(n_pools)
    starts, ends, owner = _merged_windows(sp, inst, T, spec)
    for pidx in range(n_pools):
        m_inst = inst.pool == pidx
        if not m_inst.any():
            continue
        d = float(inst.devices[m_inst][0])
        floor = min(spec.min_replicas, int(m_inst.sum()))
        sel = inst.pool[owner] == pidx
        billed[pidx] = d * _integrate_max(starts[sel], ends[sel], floor, T)
    return billed


def _merged_windows(sp, inst, T, spec):
    """Union of [start - up, end + timeout] per instance, clipped to [0, T]: (starts, ends, instance)."""
    if not len(sp.pos):
        return np.zeros(0), np.zeros(0), np.zeros(0, np.int64)
    s = np.clip(sp.start - spec.scale_up_delay_s, 0.0, T)
    e = np.clip(sp.start + sp.dur + spec.idle_timeout_s, 0.0, T)
    order = np.lexsort((s, sp.pos))
    pos, s, e = sp.pos[order], s[order], e[order]
    off = pos * (T + 1.0) * 2.0  # separates instances so one running max serves all groups
    so, eo = s + off, e + off
    prev = np.concatenate([[-np.inf], np.maximum.accumulate(eo)[:-1]])
    new = so > prev
    idx = np.flatnonzero(new)
    m_end = np.maximum.reduceat(eo, idx) - off[idx]
    return s[idx], m_end, pos[idx]


def _integrate_max(starts: np.ndarray, ends: np.ndarray, floor: int, T: float) -> float:
    """Integral over [0, T] of max(floor, number of windows open)."""
    if not len(starts):
        return floor * T
    t = np.concatenate([starts, ends, [0.0, T]])
    d = np.concatenate([np.ones(len(starts)), -np.ones(len(ends)), [0.0, 0.0]])
    order = np.lexsort((d, t))
    t, d = t[order], d[order]
    count = np.cumsum(d)
    return float(np.sum(np.maximum(count[:-1], floor) * np.diff(t)))
