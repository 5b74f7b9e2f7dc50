"""Engine output: the step log (one row per iteration, or per run of like decode iterations) and
one record per finished request, in typed array columns (no per-row objects), numpy at the end."""

from __future__ import annotations

from array import array
from typing import Any

import numpy as np

# name -> array typecode. Documented in docs/internals.md ("sim (engine)"); `steps` (iterations
# the row covers) and `overhead_s` are extra.
STEP_COLUMNS: dict[str, str] = {
    "instance": "i",
    "start_s": "d",
    "duration_s": "d",
    "prefill_tokens": "q",
    "decode_seqs": "i",
    "batch_size": "i",
    "flops": "d",
    "bytes": "d",
    "comm_bytes": "d",
    "compute_s": "d",
    "memory_s": "d",
    "comm_s": "d",
    "overhead_s": "d",
    "kv_used_blocks": "i",
    "kv_total_blocks": "i",
    "waiting": "i",
    "running": "i",
    "new_tokens": "i",
    "steps": "i",
}

REQUEST_COLUMNS: dict[str, str] = {
    "request_id": "q",
    "arrival_s": "d",
    "scheduled_s": "d",
    "first_token_s": "d",
    "finish_s": "d",
    "prompt_tokens": "q",
    "output_tokens": "q",
    "cached_tokens": "q",
    "preemptions": "i",
    "instance": "i",
    "prefill_instance": "i",
    "kv_transfer_s": "d",
}


def _np(col: array, code: str) -> np.ndarray:
    dtype = np.dtype(code)  # array and numpy agree on these codes: i int32, q int64, d float64
    return np.frombuffer(col, dtype=dtype).copy() if len(col) else np.zeros(0, dtype=dtype)


class StepLog:
    """Step rows. mode "full": one row per iteration; "runs": consecutive decode-only iterations of
    one instance with the same batch merge into one row (sums for time, FLOPs, bytes and tokens;
    the KV, queue and batch columns are those of the row's last iteration; `steps` counts them)."""

    def __init__(self, mode: str = "full"):
        self.mode = mode
        self.cols = {k: array(t) for k, t in STEP_COLUMNS.items()}
        self._codes = tuple(STEP_COLUMNS.values())
        self._last: dict[int, tuple[int, float, int]] = {}  # instance -> (row, end, decode_seqs)
        c = self.cols
        self._app = (
            c["instance"].append,
            c["start_s"].append,
            c["duration_s"].append,
            c["prefill_tokens"].append,
            c["decode_seqs"].append,
            c["batch_size"].append,
            c["flops"].append,
            c["bytes"].append,
            c["comm_bytes"].append,
            c["compute_s"].append,
            c["memory_s"].append,
            c["comm_s"].append,
            c["overhead_s"].append,
            c["kv_used_blocks"].append,
            c["kv_total_blocks"].append,
            c["waiting"].append,
            c["running"].append,
            c["new_tokens"].append,
            c["steps"].append,
        )
        if mode == "full":
            self.log = self._log_full
        else:
            self.log = self._log_runs

    def _log_full(
        self, inst: Any, start: float, dur: float, cost: Any, agg: tuple, emitted: int, steps: int
    ) -> None:
        a = self._app
        kv = inst.kv
        a[0](inst.id)
        a[1](start)
        a[2](dur)
        a[3](agg[0])
        a[4](agg[4])
        a[5](agg[1] + agg[4])
        a[6](cost.flops)
        a[7](cost.bytes)
        a[8](cost.comm_bytes)
        a[9](cost.compute_s)
        a[10](cost.memory_s)
        a[11](cost.comm_s)
        a[12](cost.overhead_s)
        a[13](kv.private + len(kv.refs))
        a[14](kv.total)
        a[15](len(inst.waiting))
        a[16](len(inst.prefilling) + inst.n_dec)
        a[17](emitted)
        a[18](steps)

    def _log_runs(
        self, inst: Any, start: float, dur: float, cost: Any, agg: tuple, emitted: int, steps: int
    ) -> None:
        last = self._last.get(inst.id)
        n = agg[4]
        if last is not None and agg[0] == 0 and last[2] == n and last[1] == start:
            row = last[0]
            c = self.cols
            c["duration_s"][row] += dur
            c["flops"][row] += cost.flops
            c["bytes"][row] += cost.bytes
            c["comm_bytes"][row] += cost.comm_bytes
            c["compute_s"][row] += cost.compute_s
            c["memory_s"][row] += cost.memory_s
            c["comm_s"][row] += cost.comm_s
            c["overhead_s"][row] += cost.overhead_s
            c["kv_used_blocks"][row] = inst.kv.used
            c["waiting"][row] = len(inst.waiting)
            c["running"][row] = inst.n_running
            c["new_tokens"][row] += emitted
            c["steps"][row] += steps
            self._last[inst.id] = (row, start + dur, n)
            return
        row = len(self.cols["instance"])
        self._log_full(inst, start, dur, cost, agg, emitted, steps)
        self._last[inst.id] = (row, start + dur, n if agg[0] == 0 else -1)

    def arrays(self) -> dict[str, np.ndarray]:
        """Columns as numpy arrays, rows ordered by (start_s, instance)."""
        out = {k: _np(v, t) for (k, v), t in zip(self.cols.items(), self._codes)}
        if len(out["instance"]):
            order = np.lexsort((out["instance"], out["start_s"]))
            out = {k: v[order] for k, v in out.items()}
        out["instance"] = out["instance"].astype(np.int64)
        return out


class RequestLog:
    """One record per finished request, written when it finishes."""

    def __init__(self):
        self.cols = {k: array(t) for k, t in REQUEST_COLUMNS.items()}
        self._codes = tuple(REQUEST_COLUMNS.values())
        c = self.cols
        self._app = tuple(c[k].append for k in REQUEST_COLUMNS)
        self.count = 0

    def add(self, r: Any) -> None:
        a = self._app
        a[0](r.id)
        a[1](r.arrival_s)
        a[2](r.scheduled_s)
        a[3](r.first_token_s)
        a[4](r.finish_s)
        a[5](r.prompt)
        a[6](r.output)
        a[7](r.cached_tokens)
        a[8](r.preemptions)
        a[9](r.instance)
        a[10](r.prefill_instance)
        a[11](r.kv_transfer_s)
        self.count += 1

    def arrays(self) -> dict[str, np.ndarray]:
        """Columns as numpy arrays, rows ordered by request_id."""
        out = {k: _np(v, t) for (k, v), t in zip(self.cols.items(), self._codes)}
        order = np.argsort(out["request_id"], kind="stable")
        out = {k: v[order] for k, v in out.items()}
        for k in ("instance", "prefill_instance", "preemptions"):
            out[k] = out[k].astype(np.int64)
        return out
