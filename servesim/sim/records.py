"""Engine output: the step log (one row per iteration, or per run of like decode iterations) and
one record per finished request, in typed array columns (no per-row objects), numpy at the end."""

from __future__ import annotations

import struct
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


class Table(dict):
    """Named numpy columns of equal length, each of the dtype ``COLUMNS`` declares; a column reads
    as ``table["start_s"]`` or ``table.start_s``. A dict, so every consumer of the old plain
    mappings keeps working."""

    COLUMNS: dict[str, str] = {}

    def __getattr__(self, name: str) -> np.ndarray:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"{type(self).__name__} has no column {name!r}") from None

    @property
    def n_rows(self) -> int:
        return len(next(iter(self.values()))) if self else 0


class StepTable(Table):
    """The step log: one row per iteration, or per run of like decode iterations ("runs" mode;
    ``steps`` counts them), ordered by (start_s, instance)."""

    COLUMNS = {**STEP_COLUMNS, "instance": "q"}


class RequestTable(Table):
    """One row per finished request, ordered by request_id."""

    COLUMNS = {**REQUEST_COLUMNS, "preemptions": "q", "instance": "q", "prefill_instance": "q"}


# The step log keeps two interleaved typed arrays: one row = FLOAT_COLS doubles + INT_COLS int32s,
# each half packed by one struct and appended as bytes (no append per column).
# prefill_tokens travels as a double (exact below 2**53) and leaves as int64.
FLOAT_COLS = ("start_s", "duration_s", "prefill_tokens", "flops", "bytes", "comm_bytes",
              "compute_s", "memory_s", "comm_s", "overhead_s")  # fmt: skip
INT_COLS = ("instance", "decode_seqs", "batch_size", "kv_used_blocks", "kv_total_blocks", "waiting",
            "running", "new_tokens", "steps")  # fmt: skip
assert set(FLOAT_COLS) | set(INT_COLS) == set(STEP_COLUMNS)
_NF, _NI = len(FLOAT_COLS), len(INT_COLS)
_F = {k: i for i, k in enumerate(FLOAT_COLS)}
_I = {k: i for i, k in enumerate(INT_COLS)}
_FLOAT_ROW = struct.Struct(f"{_NF}d")  # native layout, as array("d") and array("i") hold them
_INT_ROW = struct.Struct(f"{_NI}i")
assert _FLOAT_ROW.size == _NF * array("d").itemsize and _INT_ROW.size == _NI * array("i").itemsize
_SEGMENT_ROWS = 1 << 16  # rows moved from the log into the columns at a time (StepLog.arrays)


class StepLog:
    """Step rows. mode "full": one row per iteration; "runs": consecutive decode-only iterations of
    one instance with the same batch merge into one row (sums for time, FLOPs, bytes and tokens;
    the KV, queue and batch columns are those of the row's last iteration; `steps` counts them)."""

    def __init__(self, mode: str = "full"):
        self.mode = mode
        self.f = array("d")
        self.i = array("i")
        self._last: dict[int, tuple[int, float, int]] = {}  # instance -> (row, end, decode_seqs)
        self._full = _row_writer(self.f, self.i)
        self.log = self._full if mode == "full" else self._log_runs

    def __len__(self) -> int:
        return len(self.i) // _NI

    def _log_runs(
        self, inst: Any, start: float, dur: float, cost: Any, agg: tuple, emitted: int, steps: int
    ) -> None:
        last = self._last.get(inst.id)
        n = agg[4]
        if last is not None and agg[0] == 0 and last[2] == n and last[1] == start:
            f, i = self.f, self.i
            fr, ir = last[0] * _NF, last[0] * _NI
            f[fr + 1] += dur  # duration_s, then flops .. overhead_s (cost fields 1..7)
            for k, v in enumerate(cost[1:8], start=3):
                f[fr + k] += v
            i[ir + 3] = inst.kv.used  # kv_used_blocks
            i[ir + 5] = len(inst.waiting)
            i[ir + 6] = inst.n_running
            i[ir + 7] += emitted
            i[ir + 8] += steps
            self._last[inst.id] = (last[0], start + dur, n)
            return
        row = len(self)
        self._full(inst, start, dur, cost, agg, emitted, steps)
        self._last[inst.id] = (row, start + dur, n if agg[0] == 0 else -1)

    def log_decode_run(self, inst: Any, n: int, items: list) -> None:
        """Rows for consecutive decode-only iterations of ``inst`` with ``n`` sequences, each item
        (start, duration, cost, kv_used_blocks): what calling ``log`` once per iteration writes
        (in "runs" mode the same merges, with the same float additions in the same order, kept
        in locals and written back once per row). The queue and batch columns do not change
        within such a run; ``kv_used_blocks`` is given because the caller takes the blocks of
        the whole run at its end."""
        if self.mode != "full":
            self._merge_decode_run(inst, n, items)
            return
        fb, ib, pf, pi = self._full.rows  # type: ignore[attr-defined]
        iid, total, nw, nr = inst.id, inst.kv.total, len(inst.waiting), inst.n_running
        for start, dur, cost, used in items:
            fb(pf(start, dur, 0, *cost[1:8]))
            ib(pi(iid, n, n, used, total, nw, nr, n, 1))

    def _merge_decode_run(self, inst: Any, n: int, items: list) -> None:
        f, i = self.f, self.i
        fb, ib, pf, pi = self._full.rows  # type: ignore[attr-defined]
        iid, total, nw, nr = inst.id, inst.kv.total, len(inst.waiting), inst.n_running
        last = self._last.get(iid)
        row = -1  # the row whose sums are held in the locals below
        d = c1 = c2 = c3 = c4 = c5 = c6 = c7 = 0.0
        kv_used = emitted = steps = 0
        for start, dur, cost, used in items:
            if last is not None and last[2] == n and last[1] == start:
                if row != last[0]:
                    row = last[0]
                    fr, ir = row * _NF, row * _NI
                    d, _, c1, c2, c3, c4, c5, c6, c7 = f[fr + 1 : fr + _NF]
                    emitted, steps = i[ir + 7], i[ir + 8]
                d += dur
                c1 += cost[1]
                c2 += cost[2]
                c3 += cost[3]
                c4 += cost[4]
                c5 += cost[5]
                c6 += cost[6]
                c7 += cost[7]
                kv_used = used
                emitted += n
                steps += 1
                last = (row, start + dur, n)
                continue
            if row >= 0:
                self._put_sums(
                    row, (d, c1, c2, c3, c4, c5, c6, c7), kv_used, nw, nr, emitted, steps
                )
                row = -1
            new = len(self)
            fb(pf(start, dur, 0, *cost[1:8]))
            ib(pi(iid, n, n, used, total, nw, nr, n, 1))
            last = (new, start + dur, n)
        if row >= 0:
            self._put_sums(row, (d, c1, c2, c3, c4, c5, c6, c7), kv_used, nw, nr, emitted, steps)
        if last is not None:
            self._last[iid] = last

    def _put_sums(self, row: int, sums: tuple, kv_used: int, nw: int, nr: int, emitted: int,
                  steps: int) -> None:  # fmt: skip
        f, i = self.f, self.i
        fr, ir = row * _NF, row * _NI
        f[fr + 1] = sums[0]
        for k, v in enumerate(sums[1:], start=3):
            f[fr + k] = v
        i[ir + 3] = kv_used
        i[ir + 5] = nw
        i[ir + 6] = nr
        i[ir + 7] = emitted
        i[ir + 8] = steps

    def arrays(self) -> StepTable:
        """Columns as numpy arrays, rows ordered by (start_s, instance). Consumes the log.

        The rows are moved into the columns from the end of the log in segments, the log
        shrinking behind them, so a long log and its columns are not both held whole (a
        million-request run's step log is ~0.5 GB)."""
        n = len(self)
        out = {k: np.empty(n, dtype=np.dtype(code)) for k, code in StepTable.COLUMNS.items()}
        fcols = [(out[k], _F[k]) for k in FLOAT_COLS]
        icols = [(out[k], _I[k]) for k in INT_COLS]
        f, i = self.f, self.i
        hi = n
        while hi > 0:
            lo = max(0, hi - _SEGMENT_ROWS)
            fv = np.frombuffer(f, np.float64, (hi - lo) * _NF, lo * _NF * 8).reshape(-1, _NF)
            iv = np.frombuffer(i, np.int32, (hi - lo) * _NI, lo * _NI * 4).reshape(-1, _NI)
            for col, j in fcols:
                col[lo:hi] = fv[:, j]
            for col, j in icols:
                col[lo:hi] = iv[:, j]
            del fv, iv  # release the buffers before the arrays shrink
            del f[lo * _NF :], i[lo * _NI :]
            hi = lo
        self.f, self.i = array("d"), array("i")
        inst, start = out["instance"], out["start_s"]
        if n and not (
            np.all(np.diff(start) >= 0) and (inst.min() == inst.max() or _ties_ordered(start, inst))
        ):
            order = np.lexsort((inst, start))
            for k in out:
                out[k] = out[k][order]
        return StepTable(out)


def _ties_ordered(start: np.ndarray, inst: np.ndarray) -> bool:
    same = np.diff(start) == 0
    return bool(np.all(np.diff(inst)[same] > 0))


def _row_writer(f: array, i: array) -> Any:
    """A function appending one step row: each half packed by a struct (native doubles and
    int32s, the arrays' own layout) and appended as bytes, about 3x cheaper than extending the
    arrays with tuples. The callables are bound as defaults (fast locals)."""
    fb, ib, pf, pi = f.frombytes, i.frombytes, _FLOAT_ROW.pack, _INT_ROW.pack

    def log(inst, start, dur, cost, agg, emitted, steps, fb=fb, ib=ib, pf=pf, pi=pi):
        kv = inst.kv
        n = agg[4]
        fb(pf(start, dur, agg[0], *cost[1:8]))
        ib(pi(inst.id, n, agg[1] + n, kv.private + len(kv.refs), kv.total, len(inst.waiting),
              len(inst.prefilling) + inst.n_dec, emitted, steps))  # fmt: skip

    # for writers of many like rows at once (steploop.fast_forward): the same appends and packs
    log.rows = (fb, ib, pf, pi)  # type: ignore[attr-defined]
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

    def arrays(self) -> RequestTable:
        """Columns as numpy arrays, rows ordered by request_id. Consumes the log (each typed
        array is dropped once its ordered column exists)."""
        cols = self.cols
        ids = _np(cols["request_id"], "q")
        order = np.argsort(ids, kind="stable")
        out = {}
        for k, t in zip(list(cols), self._codes):
            v = _np(cols[k], t) if k != "request_id" else ids
            out[k] = v[order]
            del v
            cols[k] = array(t)
        self._app = tuple(cols[k].append for k in REQUEST_COLUMNS)  # (the old arrays' go)
        for k in ("instance", "prefill_instance", "preemptions"):
            out[k] = out[k].astype(np.int64)
        return RequestTable(out)
