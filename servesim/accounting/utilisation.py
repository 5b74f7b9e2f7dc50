"""Utilisation from the step log: MFU/MBU, busy fraction, batch, KV and queue statistics, per pool,
and the KV links of a prefill/decode split."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from servesim.accounting.instances import InstanceTable, instance_table
from servesim.accounting.latency import _col, _completed_mask, _per
from servesim.accounting.stats import pairwise_sum
from servesim.accounting.summary import PoolStats, Transfers, Utilisation


def _instance_table(raw: Any) -> InstanceTable:
    """The run's instance table (accounting/instances.py)."""
    return instance_table(raw)


def _step_stats(
    steps: Mapping[str, np.ndarray], inst: InstanceTable, duration: float
) -> Utilisation:
    """Utilisation and batch/KV/queue statistics over a set of steps and instances."""
    n_steps = len(steps["instance"])
    flops_cap = float((inst.peak_flops * inst.devices).sum()) * duration
    bw_cap = float((inst.mem_bw * inst.devices).sum()) * duration
    if n_steps == 0:
        return Utilisation(0, 0.0 if inst.n else None, 0.0, 0.0, None, None, None, None, None, None)
    dur = _col(steps, "duration_s")
    busy = float(dur.sum())

    def seg(name: str, a: int, b: int, dtype: Any = float) -> np.ndarray:
        return np.asarray(np.asarray(steps[name])[a:b], dtype=dtype)

    def kv(a: int, b: int) -> np.ndarray:
        total = seg("kv_total_blocks", a, b)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(total > 0, seg("kv_used_blocks", a, b) / total, 0.0)

    def iters(a: int, b: int) -> np.ndarray:
        if "steps" in steps:
            return np.maximum(seg("steps", a, b, np.int64), 1)
        return np.ones(b - a, dtype=np.int64)

    # the products summed segment by segment with numpy's own pairwise sums (stats.pairwise_sum:
    # the same bits as np.sum over step-long product arrays, which are never built); np.sum,
    # not np.dot (BLAS rounds differently per CPU; stats.weighted_stats)
    n_iters = sum(int(iters(a, b).sum()) for a, b in _segments(n_steps))
    w_batch = pairwise_sum(n_steps, lambda a, b: seg("batch_size", a, b) * iters(a, b))
    w_kv = pairwise_sum(n_steps, lambda a, b: kv(a, b) * dur[a:b])
    w_wait = pairwise_sum(n_steps, lambda a, b: seg("waiting", a, b) * dur[a:b])
    kv_mean = w_kv / busy if busy > 0 else float(np.concatenate([kv(a, b) for a, b in
                                                                 _segments(n_steps)]).mean())  # fmt: skip
    return Utilisation(
        steps=n_iters,
        busy_fraction=_per(busy, duration * inst.n),
        mfu=_per(float(_col(steps, "flops").sum()), flops_cap),
        mbu=_per(float(_col(steps, "bytes").sum()), bw_cap),
        batch_size_mean=float(w_batch / n_iters),
        batch_size_max=int(np.asarray(steps["batch_size"]).max()),
        kv_usage_mean=float(kv_mean),
        kv_usage_max=float(max(kv(a, b).max() for a, b in _segments(n_steps))),
        queue_len_mean=_per(float(w_wait), duration * inst.n),
        queue_len_max=int(np.asarray(steps["waiting"]).max()),
    )


def _segments(n: int, size: int = 1 << 16) -> list[tuple[int, int]]:
    return [(a, min(a + size, n)) for a in range(0, n, size)]


def _subset(table: Mapping[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
    return {k: np.asarray(v)[mask] for k, v in table.items()}


def _pool_stats(raw: Any, inst: InstanceTable, duration: float) -> dict[str, PoolStats]:
    """Per pool (``pool.<name>.*`` keys), only when the deployment has more than one pool."""
    pools = inst.pools
    if len(pools) < 2:
        return {}
    out: dict[str, PoolStats] = {}
    s_inst = _col(raw.steps, "instance", np.int64)
    r_inst = _col(raw.requests, "instance", np.int64)
    r_pre = _col(raw.requests, "prefill_instance", np.int64)
    queue = _col(raw.requests, "scheduled_s") - _col(raw.requests, "arrival_s")
    for pool in pools:
        members = inst.subset(inst.pool == pool)
        ids = members.ids
        st = _step_stats(_subset(raw.steps, np.isin(s_inst, ids)), members, duration)
        served = np.isin(r_inst, ids) | np.isin(r_pre, ids)
        first_stage = np.isin(np.where(r_pre >= 0, r_pre, r_inst), ids)
        q = queue[first_stage & np.isfinite(queue)]
        out[pool] = PoolStats(
            instances=members.replicas(),
            utilisation=st.busy_fraction,
            steps=st.steps,
            mfu=st.mfu,
            mbu=st.mbu,
            batch_size_mean=st.batch_size_mean,
            kv_usage_mean=st.kv_usage_mean,
            kv_usage_max=st.kv_usage_max,
            queue_len_mean=st.queue_len_mean,
            queue_len_max=st.queue_len_max,
            requests=int(served.sum()),
            queue_ms_mean=float(q.mean() * 1e3) if q.size else None,
        )
    return out


def _link_stats(t: Mapping[str, np.ndarray], inst: InstanceTable, duration: float) -> dict:
    """KV hand-offs of a prefill/decode split (raw.transfers, one row per transfer)."""
    if "bytes" not in t or not len(t["bytes"]):
        return {}
    wait = _col(t, "wait_s") * 1e3
    links = int((inst.pool == "prefill").sum()) or 1
    out = {
        "kv_transfers": int(len(t["bytes"])),
        "kv_transfer_bytes_total": float(_col(t, "bytes").sum()),
        "kv_transfer_wait_ms_mean": float(wait.mean()),
        "kv_transfer_wait_ms_p99": float(np.percentile(wait, 99)),
    }
    if "busy_s" in t:
        out["kv_link_utilisation"] = _per(float(_col(t, "busy_s").sum()), duration * links)
    if "decode_queue_s" in t:
        q = _col(t, "decode_queue_s")
        q = q[q >= 0] * 1e3
        out["decode_queue_ms_mean"] = float(q.mean()) if q.size else None
        out["decode_queue_ms_p99"] = float(np.percentile(q, 99)) if q.size else None
    return out


def _transfer_stats(req: Mapping[str, np.ndarray]) -> dict:
    split = _col(req, "prefill_instance", np.int64) >= 0
    if not split.any():
        return {}
    t = _col(req, "kv_transfer_s")[split & _completed_mask(req)] * 1e3
    return {
        "kv_transfer_ms_mean": float(t.mean()) if t.size else None,
        "kv_transfer_ms_p99": float(np.percentile(t, 99)) if t.size else None,
    }


def transfers(raw: Any, inst: InstanceTable, duration: float) -> Transfers:
    """The KV hand-offs of a prefill/decode split (every key absent without one)."""
    links = _link_stats(getattr(raw, "transfers", None) or {}, inst, duration)
    return Transfers(**_transfer_stats(raw.requests), **links)
