"""A run's step timeline as a Chrome trace (JSON Trace Event Format), for ui.perfetto.dev.

`servesim run --timeline-out run.json` (or ``timeline(result, path)``) writes one process per
instance, named after its pool, role and hardware, holding:
- a "steps" track: one slice per engine step (a "runs" row of k merged decode iterations is one
  slice with ``iterations: k``), named ``prefill``, ``decode`` or ``mixed``, with its batch size,
  prefill tokens, decode sequences, new tokens and KV blocks in use;
- counters "KV blocks" (used, free) and "queue" (waiting, running) at every step start;
- a "requests" track: one async slice per request served there, arrival to finish, with a
  "first token" instant inside; requests that were preempted are named ``request (preempted
  xN)`` (the step log records how often, not when, so the mark is on the request);
and, for a prefill/decode split, a "KV links" process with one slice per KV hand-off
(prefill instance -> decode instance, bytes, queueing on the link) and flow arrows from the
prefill instance's track to the decode instance's.

Times are microseconds of simulated time (the format's unit). The file is a deterministic
function of the run: same config and seed, same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from servesim._files import write_atomic

_US = 1e6
LINK_PID = 1_000_000  # the KV-link process, apart from instance ids


def trace_events(result: Any, *, requests: bool = True) -> dict[str, Any]:
    """The Chrome trace object of a Result (``traceEvents`` plus run metadata)."""
    raw = result.raw
    events: list[dict] = []
    for info in raw.instances:
        name = f"instance {info.instance_id}: {info.pool} ({info.role}, {info.hardware})"
        events.append(_meta("process_name", info.instance_id, 0, name))
        events.append(
            _meta("process_sort_index", info.instance_id, 0, info.instance_id, "sort_index")
        )
        events.append(_meta("thread_name", info.instance_id, 0, "steps"))
        events.append(_meta("thread_name", info.instance_id, 1, "requests"))
    events += _step_events(raw.steps)
    if requests:
        events += _request_events(raw.requests)
    events += _transfer_events(getattr(raw, "transfers", None) or {})
    cfg = result.config
    other = {
        "model": getattr(getattr(cfg, "model", None), "name", None),
        "seed": getattr(cfg, "seed", None),
        "simulated_s": float(raw.sim_end_s),
    }
    return {"traceEvents": events, "displayTimeUnit": "ms", "otherData": other}


def timeline(result: Any, path: str | Path, *, requests: bool = True) -> Path:
    """Write ``result``'s timeline to ``path`` (JSON; open it in ui.perfetto.dev).

    Example:
        >>> res = servesim.simulate(overrides={"workload.num_requests": 50})  # doctest: +SKIP
        >>> timeline(res, "run.json")  # doctest: +SKIP
    """
    p = Path(path)
    text = json.dumps(trace_events(result, requests=requests), separators=(",", ":"))
    write_atomic(p, text)
    return p


def _meta(kind: str, pid: int, tid: int, value: Any, key: str = "name") -> dict:
    return {"ph": "M", "name": kind, "pid": int(pid), "tid": int(tid), "args": {key: value}}


def _t(seconds: Any) -> float:
    return round(float(seconds) * _US, 3)  # ns resolution; stable text


def _col(d: Mapping[str, Any], key: str, n: int, dtype: Any = float) -> np.ndarray:
    v = d.get(key)
    return np.asarray(v, dtype=dtype) if v is not None else np.zeros(n, dtype=dtype)


def _step_events(steps: Mapping[str, Any]) -> list[dict]:
    n = len(steps.get("instance", ()))
    if n == 0:
        return []
    inst = _col(steps, "instance", n, np.int64)
    start, dur = _col(steps, "start_s", n), _col(steps, "duration_s", n)
    pre, dec = _col(steps, "prefill_tokens", n, np.int64), _col(steps, "decode_seqs", n, np.int64)
    batch, new = _col(steps, "batch_size", n, np.int64), _col(steps, "new_tokens", n, np.int64)
    used, total = (
        _col(steps, "kv_used_blocks", n, np.int64),
        _col(steps, "kv_total_blocks", n, np.int64),
    )
    wait, run = _col(steps, "waiting", n, np.int64), _col(steps, "running", n, np.int64)
    iters = _col(steps, "steps", n, np.int64) if "steps" in steps else np.ones(n, dtype=np.int64)
    out = []
    for i in np.argsort(start, kind="stable").tolist():
        pid = int(inst[i])
        kind = "mixed" if pre[i] and dec[i] else "prefill" if pre[i] else "decode"
        args = {"batch": int(batch[i]), "prefill_tokens": int(pre[i]), "decode_seqs": int(dec[i]),
                "new_tokens": int(new[i]), "kv_used_blocks": int(used[i])}  # fmt: skip
        if iters[i] > 1:
            args["iterations"] = int(iters[i])
        ts = _t(start[i])
        out.append({"ph": "X", "cat": "step", "name": kind, "pid": pid, "tid": 0, "ts": ts,
                    "dur": _t(dur[i]), "args": args})  # fmt: skip
        out.append({"ph": "C", "name": "KV blocks", "pid": pid, "ts": ts,
                    "args": {"used": int(used[i]), "free": int(total[i] - used[i])}})  # fmt: skip
        out.append({"ph": "C", "name": "queue", "pid": pid, "ts": ts,
                    "args": {"waiting": int(wait[i]), "running": int(run[i])}})  # fmt: skip
    return out


def _request_events(req: Mapping[str, Any]) -> list[dict]:
    n = len(req.get("request_id", ()))
    if n == 0:
        return []
    rid = _col(req, "request_id", n, np.int64)
    inst = _col(req, "instance", n, np.int64)
    arrival, first, finish = (_col(req, k, n) for k in ("arrival_s", "first_token_s", "finish_s"))
    pre = _col(req, "preemptions", n, np.int64)
    ptok, otok = _col(req, "prompt_tokens", n, np.int64), _col(req, "output_tokens", n, np.int64)
    out = []
    for i in range(n):
        if not np.isfinite(finish[i]) or inst[i] < 0:
            continue
        pid, ident = int(inst[i]), int(rid[i])
        name = "request" if not pre[i] else f"request (preempted x{int(pre[i])})"
        args = {"id": ident, "prompt_tokens": int(ptok[i]), "output_tokens": int(otok[i]),
                "preemptions": int(pre[i])}  # fmt: skip
        common = {"cat": "request", "name": name, "pid": pid, "tid": 1, "id": ident}
        out.append({**common, "ph": "b", "ts": _t(arrival[i]), "args": args})
        if np.isfinite(first[i]):
            out.append({**common, "ph": "n", "name": "first token", "ts": _t(first[i])})
        out.append({**common, "ph": "e", "ts": _t(finish[i])})
    return out


def _transfer_events(t: Mapping[str, Any]) -> list[dict]:
    n = len(t.get("bytes", ()))
    if n == 0:
        return []
    out = [_meta("process_name", LINK_PID, 0, "KV links (prefill -> decode)")]
    src, dst = _col(t, "prefill_instance", n, np.int64), _col(t, "decode_instance", n, np.int64)
    start, end = _col(t, "start_s", n), _col(t, "end_s", n)
    nbytes, wait = _col(t, "bytes", n), _col(t, "wait_s", n)
    rid = _col(t, "request_id", n, np.int64)
    for s in sorted(set(src.tolist())):
        out.append(_meta("thread_name", LINK_PID, int(s), f"from instance {int(s)}"))
    for i in np.argsort(start, kind="stable").tolist():
        ts = _t(start[i])
        out.append({"ph": "X", "cat": "kv_transfer", "name": f"KV -> {int(dst[i])}",
                    "pid": LINK_PID, "tid": int(src[i]), "ts": ts, "dur": _t(end[i] - start[i]),
                    "args": {"request": int(rid[i]), "bytes": float(nbytes[i]),
                             "wait_ms": float(wait[i]) * 1e3}})  # fmt: skip
        flow = {"cat": "kv_transfer", "name": "kv", "id": int(rid[i])}
        out.append({**flow, "ph": "s", "pid": int(src[i]), "tid": 0, "ts": ts})
        if dst[i] >= 0:
            out.append({**flow, "ph": "f", "bp": "e", "pid": int(dst[i]), "tid": 0,
                        "ts": _t(end[i])})  # fmt: skip
    return out
