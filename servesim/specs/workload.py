"""WorkloadSpec: where requests come from (a trace, an arrival process, or closed-loop clients)
and how long their prompts and outputs are. Parsed and validated once, here.

The `workload:` block of a run config:

    trace:    {format, path, speedup, start_s, duration_s, sample, max_input, max_output, columns, time_unit}
    arrivals: {process: poisson|gamma|constant|diurnal|bursty, rate, cv, peak_to_trough, period_s, phase_s, on_s, off_s}
    clients:  {concurrency, think_time_s}
    lengths:  {input: DIST, output: DIST} | {empirical: PATH, format} | {preset: azure-conv|azure-code}
              DIST = {dist: fixed|uniform|lognormal|empirical, mean, range_ratio, sigma, path, format, min, max}
    prefix:   {shared_tokens, groups}          # a system prompt shared inside each of `groups` groups
    sessions: {concurrent, turns}              # multi-turn conversations that grow their context
    num_requests, duration_s
    max_concurrency                            # open loop only: at most this many outstanding

Exactly one of trace / arrivals / clients. docs/workloads.md describes every key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from servesim.specs.common import (
    SpecError,
    check_keys,
    get_choice,
    get_number,
    get_str,
    require_mapping,
)

TRACE_FORMATS = ("azure", "mooncake", "burstgpt", "csv", "jsonl")
ARRIVAL_PROCESSES = ("poisson", "gamma", "constant", "diurnal", "bursty")
LENGTH_DISTS = ("fixed", "uniform", "lognormal", "empirical")
# Named length distributions fitted to public traces; parameters live in workload/synthetic.py.
LENGTH_PRESETS = ("azure-conv", "azure-code")
# Generic CSV/JSONL: servesim field -> column name in the file (these are the defaults).
TRACE_COLUMNS = (
    "arrival", "prompt_tokens", "output_tokens", "session_id", "prefix_hashes", "priority",
    "ttft_slo_ms",
)  # fmt: skip
TIME_UNITS = ("s", "ms", "us", "ns", "datetime")
MIN_SPAN_S = 1e-6  # shortest diurnal period or bursty on-phase (docs/reliability.md)


@dataclass(frozen=True, slots=True)
class TraceSpec:
    path: str
    format: str | None = None  # None: inferred from the file (extension and header)
    speedup: float = 1.0  # inter-arrival times are divided by this
    start_s: float | None = None  # window start, seconds after the first request
    duration_s: float | None = None  # window length (before speed-up)
    sample: float | None = None  # keep this fraction of requests (seeded)
    max_input: int | None = None  # clip prompt lengths
    max_output: int | None = None  # clip output lengths
    columns: tuple[tuple[str, str], ...] | None = None  # generic csv/jsonl column mapping
    time_unit: str = "s"  # generic csv/jsonl: unit of the arrival column


@dataclass(frozen=True, slots=True)
class ArrivalSpec:
    process: str
    rate: float  # requests/s (bursty: the rate while on; diurnal: the mean rate)
    cv: float | None = None  # gamma: coefficient of variation of inter-arrival times
    peak_to_trough: float | None = None  # diurnal: max rate / min rate
    period_s: float = 86400.0  # diurnal: one day
    phase_s: float = 0.0  # diurnal: time of the trough
    on_s: float | None = None  # bursty
    off_s: float | None = None  # bursty

    @property
    def mean_rate(self) -> float:
        if self.process == "bursty":
            return self.rate * self.on_s / (self.on_s + self.off_s)
        return self.rate


@dataclass(frozen=True, slots=True)
class ClientSpec:
    concurrency: int  # requests in flight, like benchmark_serving --max-concurrency
    think_time_s: float = 0.0  # pause between a client's response and its next request


@dataclass(frozen=True, slots=True)
class LengthDist:
    dist: str
    mean: float | None = None  # fixed, uniform, lognormal (the mean, not the median)
    range_ratio: float = 0.0  # uniform: integers in [floor(mean(1-r)), ceil(mean(1+r))]
    sigma: float | None = None  # lognormal: standard deviation of log(length)
    path: str | None = None  # empirical: resample from this trace; lognormal: fit to it
    format: str | None = None  # format of `path` (inferred when None)
    min: int = 1  # clip bounds
    max: int | None = None


@dataclass(frozen=True, slots=True)
class LengthsSpec:
    input: LengthDist | None = None
    output: LengthDist | None = None
    empirical: str | None = None  # resample (input, output) pairs jointly from this trace
    format: str | None = None  # format of `empirical`
    preset: str | None = None  # a fitted named distribution (LENGTH_PRESETS)


@dataclass(frozen=True, slots=True)
class PrefixSpec:
    shared_tokens: int  # tokens at the start of every prompt shared within a group
    groups: int = 1  # distinct shared prefixes (e.g. system prompts); requests pick one at random


@dataclass(frozen=True, slots=True)
class SessionSpec:
    concurrent: int  # conversations open at once; each arrival continues one of them at random
    turns: int  # turns per conversation before it is replaced by a new one


@dataclass(frozen=True, slots=True)
class WorkloadSpec:
    trace: TraceSpec | None = None
    arrivals: ArrivalSpec | None = None
    clients: ClientSpec | None = None
    lengths: LengthsSpec | None = None
    num_requests: int | None = None
    duration_s: float | None = None
    prefix: PrefixSpec | None = None
    sessions: SessionSpec | None = None
    # open loop only: requests whose arrival time has come wait (in arrival order) while this
    # many are outstanding, like benchmark_serving's --request-rate with --max-concurrency
    max_concurrency: int | None = None

    @property
    def kind(self) -> str:
        return "trace" if self.trace else "arrivals" if self.arrivals else "clients"


_WORKLOAD_KEYS = (
    "trace",
    "arrivals",
    "clients",
    "lengths",
    "num_requests",
    "duration_s",
    "prefix",
    "sessions",
    "max_concurrency",
)


def parse_workload(data: Any, where: str, field: str = "workload") -> WorkloadSpec:
    """The `workload:` block -> WorkloadSpec; any bad key or value is one SpecError."""
    data = require_mapping(data, where, field)
    check_keys(data, _WORKLOAD_KEYS, where, field)
    sources = [k for k in ("trace", "arrivals", "clients") if data.get(k) is not None]
    if len(sources) != 1:
        raise SpecError(
            where,
            field,
            sorted(sources) or "<none>",
            "give exactly one of trace, arrivals, clients",
        )
    trace = _parse_trace(data["trace"], where, f"{field}.trace") if "trace" in sources else None
    arrivals = (
        _parse_arrivals(data["arrivals"], where, f"{field}.arrivals")
        if "arrivals" in sources
        else None
    )
    clients = (
        _parse_clients(data["clients"], where, f"{field}.clients") if "clients" in sources else None
    )
    lengths = None
    if data.get("lengths") is not None:
        lengths = _parse_lengths(data["lengths"], where, f"{field}.lengths")
    elif trace is None:
        raise SpecError(
            where,
            f"{field}.lengths",
            "<missing>",
            "required with arrivals or clients: {input, output}, {empirical: PATH} or {preset: NAME}",
        )
    num = get_number(
        data, "num_requests", where, field, default=None, minimum=1, integer=True, allow_none=True
    )
    dur = get_number(
        data,
        "duration_s",
        where,
        field,
        default=None,
        minimum=0,
        exclusive_min=True,
        allow_none=True,
    )
    if trace is None and num is None and dur is None:
        raise SpecError(
            where, f"{field}.num_requests", "<missing>", "give num_requests or duration_s (or both)"
        )
    prefix = _parse_prefix(data.get("prefix"), where, f"{field}.prefix")
    sessions = _parse_sessions(data.get("sessions"), where, f"{field}.sessions")
    if (prefix or sessions) and trace is not None:
        raise SpecError(
            where,
            f"{field}.{'prefix' if prefix else 'sessions'}",
            "<set>",
            "not allowed with a trace (prefix sharing comes from the trace's hash ids)",
        )
    cap = get_number(
        data,
        "max_concurrency",
        where,
        field,
        default=None,
        minimum=1,
        integer=True,
        allow_none=True,
    )
    if cap is not None and clients is not None:
        raise SpecError(
            where,
            f"{field}.max_concurrency",
            cap,
            "only with trace or arrivals (closed loop: clients.concurrency caps requests in flight)",
        )
    return WorkloadSpec(trace, arrivals, clients, lengths, num, dur, prefix, sessions, cap)


def _parse_prefix(data: Any, where: str, field: str) -> PrefixSpec | None:
    if data is None:
        return None
    data = require_mapping(data, where, field)
    check_keys(data, ("shared_tokens", "groups"), where, field)
    return PrefixSpec(
        get_number(data, "shared_tokens", where, field, minimum=0, integer=True),
        get_number(data, "groups", where, field, default=1, minimum=1, integer=True),
    )


def _parse_sessions(data: Any, where: str, field: str) -> SessionSpec | None:
    if data is None:
        return None
    data = require_mapping(data, where, field)
    check_keys(data, ("concurrent", "turns"), where, field)
    return SessionSpec(
        get_number(data, "concurrent", where, field, minimum=1, integer=True),
        get_number(data, "turns", where, field, minimum=1, integer=True),
    )


def _opt_pos(d: Mapping, key: str, where: str, prefix: str, integer: bool = False):
    return get_number(
        d,
        key,
        where,
        prefix,
        default=None,
        minimum=0,
        exclusive_min=True,
        integer=integer,
        allow_none=True,
    )


def _parse_trace(data: Any, where: str, field: str) -> TraceSpec:
    if isinstance(data, str):  # `trace: path/to/file.csv`
        data = {"path": data}
    data = require_mapping(data, where, field)
    check_keys(data, [f.name for f in TraceSpec.__dataclass_fields__.values()], where, field)
    fmt = (
        get_choice(data, "format", TRACE_FORMATS, where, field, default=None)
        if data.get("format") is not None
        else None
    )
    sample = get_number(
        data,
        "sample",
        where,
        field,
        default=None,
        minimum=0,
        exclusive_min=True,
        maximum=1,
        allow_none=True,
    )
    start = get_number(data, "start_s", where, field, default=None, minimum=0, allow_none=True)
    columns = None
    if data.get("columns") is not None:
        cols = require_mapping(data["columns"], where, f"{field}.columns")
        check_keys(cols, TRACE_COLUMNS, where, f"{field}.columns")
        columns = tuple(
            (k, get_str(cols, k, where, f"{field}.columns")) for k in TRACE_COLUMNS if k in cols
        )
        if fmt not in ("csv", "jsonl"):
            raise SpecError(
                where, f"{field}.columns", dict(columns), "only with format csv or jsonl"
            )
    return TraceSpec(
        path=get_str(data, "path", where, field),
        format=fmt,
        speedup=get_number(
            data, "speedup", where, field, default=1.0, minimum=0, exclusive_min=True
        ),
        start_s=start,
        duration_s=_opt_pos(data, "duration_s", where, field),
        sample=sample,
        max_input=_opt_pos(data, "max_input", where, field, integer=True),
        max_output=_opt_pos(data, "max_output", where, field, integer=True),
        columns=columns,
        time_unit=get_choice(data, "time_unit", TIME_UNITS, where, field, default="s"),
    )


def _parse_arrivals(data: Any, where: str, field: str) -> ArrivalSpec:
    data = require_mapping(data, where, field)
    check_keys(data, [f.name for f in ArrivalSpec.__dataclass_fields__.values()], where, field)
    process = get_choice(data, "process", ARRIVAL_PROCESSES, where, field)
    rate = get_number(data, "rate", where, field, minimum=0, exclusive_min=True)
    needed = {"gamma": ("cv",), "diurnal": ("peak_to_trough",), "bursty": ("on_s", "off_s")}.get(
        process, ()
    )
    used = {"cv", "peak_to_trough", "period_s", "phase_s", "on_s", "off_s"} & set(data)
    extra = used - set(needed) - ({"period_s", "phase_s"} if process == "diurnal" else set())
    if extra:
        raise SpecError(
            where,
            f"{field}.{sorted(extra)[0]}",
            data[sorted(extra)[0]],
            f"not a parameter of process {process}",
        )
    for key in needed:
        if key not in data:
            raise SpecError(where, f"{field}.{key}", "<missing>", f"required for process {process}")
    return ArrivalSpec(
        process=process,
        rate=rate,
        # gamma shape is 1/cv^2: outside [1e-4, 1e4] it overflows or divides by zero
        cv=get_number(
            data, "cv", where, field, default=None, minimum=1e-4, maximum=1e4, allow_none=True
        ),
        peak_to_trough=get_number(
            data, "peak_to_trough", where, field, default=None, minimum=1, allow_none=True
        ),
        period_s=get_number(data, "period_s", where, field, default=86400.0, minimum=MIN_SPAN_S),
        phase_s=get_number(data, "phase_s", where, field, default=0.0, minimum=0),
        # spans shorter than a microsecond underflow the on/off arithmetic (1e-300 divided by 0)
        on_s=get_number(
            data, "on_s", where, field, default=None, minimum=MIN_SPAN_S, allow_none=True
        ),
        off_s=get_number(data, "off_s", where, field, default=None, minimum=0, allow_none=True),
    )


def _parse_clients(data: Any, where: str, field: str) -> ClientSpec:
    data = require_mapping(data, where, field)
    check_keys(data, ("concurrency", "think_time_s"), where, field)
    return ClientSpec(
        concurrency=get_number(data, "concurrency", where, field, minimum=1, integer=True),
        think_time_s=get_number(data, "think_time_s", where, field, default=0.0, minimum=0),
    )


def _parse_lengths(data: Any, where: str, field: str) -> LengthsSpec:
    data = require_mapping(data, where, field)
    check_keys(data, ("input", "output", "empirical", "format", "preset"), where, field)
    if data.get("preset") is not None:
        check_keys(data, ("preset",), where, field)
        return LengthsSpec(preset=get_choice(data, "preset", LENGTH_PRESETS, where, field))
    if data.get("empirical") is not None:
        check_keys(data, ("empirical", "format"), where, field)
        fmt = (
            get_choice(data, "format", TRACE_FORMATS, where, field, default=None)
            if data.get("format") is not None
            else None
        )
        return LengthsSpec(empirical=get_str(data, "empirical", where, field), format=fmt)
    for side in ("input", "output"):
        if data.get(side) is None:
            raise SpecError(
                where,
                f"{field}.{side}",
                "<missing>",
                "required (or give lengths.empirical or lengths.preset)",
            )
    return LengthsSpec(
        input=_parse_dist(data["input"], where, f"{field}.input"),
        output=_parse_dist(data["output"], where, f"{field}.output"),
    )


_DIST_KEYS = {
    "fixed": ("mean",),
    "uniform": ("mean", "range_ratio"),
    "lognormal": ("mean", "sigma", "path", "format"),
    "empirical": ("path", "format"),
}


def _parse_dist(data: Any, where: str, field: str) -> LengthDist:
    if isinstance(data, int) and not isinstance(data, bool):  # `input: 1024` == fixed
        data = {"dist": "fixed", "mean": data}
    data = require_mapping(data, where, field)
    dist = get_choice(data, "dist", LENGTH_DISTS, where, field)
    check_keys(data, ("dist", "min", "max", *_DIST_KEYS[dist]), where, field)
    lo = get_number(data, "min", where, field, default=1, minimum=1, integer=True)
    hi = get_number(
        data, "max", where, field, default=None, minimum=lo, integer=True, allow_none=True
    )
    fmt = (
        get_choice(data, "format", TRACE_FORMATS, where, field, default=None)
        if data.get("format") is not None
        else None
    )
    if dist == "empirical":
        return LengthDist(
            dist, path=get_str(data, "path", where, field), format=fmt, min=lo, max=hi
        )
    if dist == "lognormal" and data.get("path") is not None:  # fit mean and sigma to a trace
        if "mean" in data or "sigma" in data:
            raise SpecError(
                where, f"{field}.path", data["path"], "give either path (fit) or mean and sigma"
            )
        return LengthDist(
            dist, path=get_str(data, "path", where, field), format=fmt, min=lo, max=hi
        )
    mean = get_number(data, "mean", where, field, minimum=1)
    if dist == "fixed":
        return LengthDist(dist, mean=mean, min=lo, max=hi)
    if dist == "uniform":
        # vLLM's random dataset requires 0 <= range_ratio < 1 (vllm/benchmarks/datasets.py).
        ratio = get_number(
            data, "range_ratio", where, field, default=0.0, minimum=0, maximum=0.999999
        )
        return LengthDist(dist, mean=mean, range_ratio=ratio, min=lo, max=hi)
    sigma = get_number(data, "sigma", where, field, minimum=0, exclusive_min=True)
    return LengthDist(dist, mean=mean, sigma=sigma, min=lo, max=hi)


def workload_to_dict(spec: WorkloadSpec) -> dict[str, Any]:
    """The resolved `workload:` block; parse_workload(workload_to_dict(s)) == s."""
    out: dict[str, Any] = {}
    if spec.trace is not None:
        t = _fields(spec.trace, skip_default=True)
        if spec.trace.columns is not None:
            t["columns"] = dict(spec.trace.columns)
        out["trace"] = t
    if spec.arrivals is not None:
        out["arrivals"] = _fields(spec.arrivals, skip_default=True)
    if spec.clients is not None:
        out["clients"] = _fields(spec.clients)
    if spec.lengths is not None:
        lengths = _fields(spec.lengths)
        for side in ("input", "output"):
            if side in lengths:
                lengths[side] = _fields(lengths[side], skip_default=True)
                lengths[side]["dist"] = getattr(spec.lengths, side).dist
        out["lengths"] = lengths
    for key in ("num_requests", "duration_s", "max_concurrency"):
        if getattr(spec, key) is not None:
            out[key] = getattr(spec, key)
    if spec.prefix is not None:
        out["prefix"] = _fields(spec.prefix)
    if spec.sessions is not None:
        out["sessions"] = _fields(spec.sessions)
    return out


def _fields(obj: Any, skip_default: bool = False) -> dict[str, Any]:
    """Non-None fields of a dataclass (and, with skip_default, those that differ from the default)."""
    out = {}
    for name, f in obj.__dataclass_fields__.items():
        value = getattr(obj, name)
        if value is None or (skip_default and value == f.default):
            continue
        out[name] = value
    return out
