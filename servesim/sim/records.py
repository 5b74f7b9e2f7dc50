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
    return np.array(col, dtype=dtype) if len(col) else np.zeros(0, dtype=dtype)


class StepLog:
    """Step rows. mode "full": one row per iteration; "runs": consecutive decode-only iterations of
    one instance with the same batch merge into one row (sums for time, FLOPs, bytes and tokens;
    the KV, queue and batch columns are those of the row's last iteration; `steps` counts them)."""

    def __init__(self, mode: str = "full"):
        self.mode = mode
        self.cols = {k: array(t) for k, t in STEP_COLUMNS.items()}
        self._codes = tuple(STEP_COLUMNS.values())
        self._last: dict[int, tuple[int, float, int]] = {}  # instance -> (row, end, decode_seqs)
        self._full = _row_writer(self.cols)
        self.log = self._full if mode == "full" else self._log_runs

    def _log_runs(
        self, inst: Any, start: float, dur: float, cost: Any, agg: tuple, emitted: int, steps: int
    ) -> None:
        last = self._last.get(inst.id)
        n = agg[4]
        if last is not None and agg[0] == 0 and last[2] == n and last[1] == start:
            row = last[0]
            c = self.cols
            _, fl, by, cb, cs, ms, ks, os_, _ = cost
            c["duration_s"][row] += dur
            c["flops"][row] += fl
            c["bytes"][row] += by
            c["comm_bytes"][row] += cb
            c["compute_s"][row] += cs
            c["memory_s"][row] += ms
            c["comm_s"][row] += ks
            c["overhead_s"][row] += os_
            c["kv_used_blocks"][row] = inst.kv.used
            c["waiting"][row] = len(inst.waiting)
            c["running"][row] = inst.n_running
            c["new_tokens"][row] += emitted
            c["steps"][row] += steps
            self._last[inst.id] = (row, start + dur, n)
            return
        row = len(self.cols["instance"])
        self._full(inst, start, dur, cost, agg, emitted, steps)
        self._last[inst.id] = (row, start + dur, n if agg[0] == 0 else -1)

    def arrays(self) -> dict[str, np.ndarray]:
        """Columns as numpy arrays, rows ordered by (start_s, instance). Consumes the log."""
        cols, self.cols = self.cols, {}
        inst = _np(cols["instance"], "i")
        start = _np(cols["start_s"], "d")
        order = None
        if len(inst) and not (
            np.all(np.diff(start) >= 0)
            and (len(np.unique(inst)) == 1 or _ties_ordered(start, inst))
        ):
            order = np.lexsort((inst, start))
        out = {}
        for k, code in zip(list(cols), self._codes):
            col = cols.pop(k)  # free each array.array as soon as it is converted
            v = inst if k == "instance" else start if k == "start_s" else _np(col, code)
            del col
            out[k] = v[order] if order is not None else v
        out["instance"] = out["instance"].astype(np.int64)
        return out


def _ties_ordered(start: np.ndarray, inst: np.ndarray) -> bool:
    same = np.diff(start) == 0
    return bool(np.all(np.diff(inst)[same] > 0))


def _row_writer(c: dict[str, array]) -> Any:
    """A function appending one step row; the column appends are bound as defaults (fast locals)."""

    def log(
        inst, start, dur, cost, agg, emitted, steps,
        a0=c["instance"].append, a1=c["start_s"].append, a2=c["duration_s"].append,
        a3=c["prefill_tokens"].append, a4=c["decode_seqs"].append, a5=c["batch_size"].append,
        a6=c["flops"].append, a7=c["bytes"].append, a8=c["comm_bytes"].append,
        a9=c["compute_s"].append, a10=c["memory_s"].append, a11=c["comm_s"].append,
        a12=c["overhead_s"].append, a13=c["kv_used_blocks"].append, a14=c["kv_total_blocks"].append,
        a15=c["waiting"].append, a16=c["running"].append, a17=c["new_tokens"].append,
        a18=c["steps"].append,
    ):  # fmt: skip
        kv = inst.kv
        _, fl, by, cb, cs, ms, ks, os_, _ = cost
        a0(inst.id)
        a1(start)
        a2(dur)
        a3(agg[0])
        a4(agg[4])
        a5(agg[1] + agg[4])
        a6(fl)
        a7(by)
        a8(cb)
        a9(cs)
        a10(ms)
        a11(ks)
        a12(os_)
        a13(kv.private + len(kv.refs))
        a14(kv.total)
        a15(len(inst.waiting))
        a16(len(inst.prefilling) + inst.n_dec)
        a17(emitted)
        a18(steps)

    return log


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
