"""simulate(config) -> Result: run one deployment on one workload and keep what came out.

A Result holds the flat summary (metrics, energy, cost), the per-request records and the step log
as DataFrames (built once), the resolved RunConfig and the engine's raw arrays. ``to_dir`` writes
them atomically: everything goes into a temporary folder beside the target, which is renamed into
place at the end, so an interrupted or failed write never leaves a half-written result.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import FrozenInstanceError
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from servesim._files import DIR_MODE, check_writable_parent, share_mode, write_json_streamed
from servesim.accounting import metrics
from servesim.cost.intervals import run_intervals  # prediction intervals (calibration)
from servesim.specs.common import SpecError

if TYPE_CHECKING:
    import pandas as pd

# Files of a result folder; a folder holding summary.json may be replaced by a new result.
OUTPUT_FILES = (
    "summary.json",
    "requests.parquet",
    "steps.parquet",
    "config.yaml",
    "benchmark.json",
    "timeseries.csv",
)


class Result:
    """One simulated run. ``summary`` keys are listed in docs/metrics.md.

    ``requests`` and ``steps`` are DataFrames built from ``raw`` on first use (pandas is imported
    then, not for a run that only prints its summary); read-only attributes, as a frozen
    dataclass's."""

    __slots__ = ("summary", "config", "raw", "sections", "_requests", "_steps")

    def __init__(
        self,
        summary: dict[str, Any],
        requests: pd.DataFrame | None = None,
        steps: pd.DataFrame | None = None,
        config: Any = None,  # RunConfig
        raw: Any = None,  # RawRun
        # the same summary as a nested typed value (accounting/summary.py: sections.latency.ttft_ms.p99)
        sections: Any = None,
    ):
        for k, v in (("summary", summary), ("config", config), ("raw", raw),
                     ("sections", sections), ("_requests", requests),
                     ("_steps", steps)):  # fmt: skip
            object.__setattr__(self, k, v)

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __reduce__(self) -> tuple:  # pickling (sweeps in worker processes) through __init__
        return (
            Result,
            (self.summary, self._requests, self._steps, self.config, self.raw, self.sections),
        )

    @property
    def requests(self) -> pd.DataFrame:
        """Per-request records (``requests_frame``)."""
        if self._requests is None:
            object.__setattr__(self, "_requests", requests_frame(self.raw))
        return self._requests

    @property
    def steps(self) -> pd.DataFrame:
        """The step log; the frame wraps the engine's arrays without a copy (a million-request
        step log is ~0.4 GB); under pandas < 3 (no copy-on-write) an in-place edit of one shows
        in the other."""
        if self._steps is None:
            import pandas as pd

            frame = pd.DataFrame({k: np.asarray(v) for k, v in self.raw.steps.items()}, copy=False)
            object.__setattr__(self, "_steps", frame)
        return self._steps

    def __repr__(self) -> str:
        """One line (a notebook shows this, not every request): model, deployment, headline."""
        s = self.summary
        name = getattr(getattr(self.config, "model", None), "name", "?")
        parts = [f"{s.get('completed', '?')}/{s.get('num_requests', '?')} requests"]
        for key, fmt in (("output_throughput", "{:,.0f} tok/s"), ("ttft_ms_p99", "TTFT p99 {:,.0f} ms"),
                         ("tpot_ms_p99", "TPOT p99 {:.1f} ms")):  # fmt: skip
            if isinstance(s.get(key), (int, float)):
                parts.append(fmt.format(s[key]))
        return f"<Result {name}: {', '.join(parts)}>"

    def time_series(self, interval_s: float | None = None) -> pd.DataFrame:
        """Per-instance batch size, KV use and queue length in bins of ``interval_s`` (auto: about
        500 bins over the run, on a 1-2-5 grid)."""
        return metrics.time_series(self.raw, interval_s or auto_interval(self.raw.sim_end_s))

    def benchmark(self, extra: Mapping[str, Any] | None = None, *, detailed: bool = True) -> dict:
        """vLLM benchmark_serving's result JSON for this run (metrics.benchmark_json)."""
        return metrics.benchmark_json(self.summary, self.raw, self.config, extra, detailed=detailed)

    def to_dir(self, path: str | Path, *, detailed: bool = False) -> Path:
        """Write summary.json, requests.parquet, steps.parquet, config.yaml (resolved: loading it
        reproduces this run), benchmark.json and timeseries.csv into ``path``, atomically.

        benchmark.json holds the aggregates only unless ``detailed`` (vLLM's --save-detailed:
        the per-request lists, every inter-token latency included: ~100 MB for 20k requests);
        requests.parquet and steps.parquet hold everything those lists are derived from.

        An existing ``path`` is replaced only when it is empty or a previous result (holds
        summary.json); anything else is a SpecError, so a typo cannot wipe a folder.
        """
        target = Path(path)
        self.check_out_dir(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            share_mode(tmp, is_dir=True)  # mkdtemp makes 0700
            self._write(tmp, detailed)
            os.chmod(tmp, DIR_MODE)  # mkdtemp's 0700 -> what mkdir would give (0755)
            _replace_dir(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return target

    @staticmethod
    def check_out_dir(path: str | Path) -> None:
        """SpecError unless ``path`` is absent, an empty folder or a previous result; call it
        before a long run so a bad --out fails at once."""
        _check_target(Path(path))

    def _write(self, folder: Path, detailed: bool) -> None:
        from servesim.specs.config import config_to_dict

        # the small files first: their temporaries come and go before pyarrow (~80 MB once
        # loaded) and the request frame's derived columns are held
        _write_json(folder / "summary.json", self.summary)
        text = yaml.safe_dump(_plain(config_to_dict(self.config)), sort_keys=False)
        (folder / "config.yaml").write_text(text, encoding="utf-8")
        # the per-request lists (itls: every token gap) are streamed: a million requests' worth
        # would otherwise be tens of GB of Python lists (docs/reliability.md)
        head = _plain(self.benchmark(detailed=False))
        lists = metrics.bench_list_iters(self.raw) if detailed else {}
        write_json_streamed(folder / "benchmark.json", head, lists)
        self.time_series().to_csv(folder / "timeseries.csv", index=False)
        # a frame built here is not kept on the Result (its derived columns are 4 request-long
        # arrays); one already built is reused
        requests = self._requests if self._requests is not None else requests_frame(self.raw)
        requests.to_parquet(folder / "requests.parquet", index=False)
        del requests
        # dictionary encoding for the integer columns only: the float ones (times, FLOPs) rarely
        # repeat, and trying a dictionary on them made the write ~3x slower and the file larger
        steps = self.steps
        ints = [c for c in steps.columns if steps[c].dtype.kind in "iub"]
        steps.to_parquet(folder / "steps.parquet", index=False, use_dictionary=ints)


def simulate(
    config: Any = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    progress: bool | Callable[..., Any] = False,
) -> Result:
    """Simulate one run. ``config``: a YAML path, a mapping, a RunConfig, or None for the embedded
    default (specs.config.DEFAULT_CONFIG); ``overrides``: dotted keys (``workload.arrivals.rate``).
    ``progress``: True for a line on stderr, or a callback handed to the engine."""
    cfg = resolve_config(config, overrides)
    from servesim.sim import cluster

    callback = _stderr_progress if progress is True else (progress or None)
    raw = cluster.run(cfg, progress=callback)
    return build_result(raw, cfg)


def resolve_config(config: Any = None, overrides: Mapping[str, Any] | None = None) -> Any:
    """A RunConfig from a path, mapping, RunConfig or None (the default), with overrides applied."""
    from servesim.specs.config import DEFAULT_CONFIG, RunConfig, config_to_dict, load_config

    overrides = dict(overrides or {})
    if isinstance(config, RunConfig):
        if not overrides:
            return config
        config = config_to_dict(config)
    if config is None:
        config = DEFAULT_CONFIG
    if isinstance(config, Path):
        config = str(config)
    source = _override_source(overrides)
    if source is not None:
        base = load_config(config)
        if _workload_source(base) != source:
            config = _switch_source(config_to_dict(base), source, overrides)
    return load_config(config, overrides)


_SOURCES = ("trace", "arrivals", "clients")


def _override_source(overrides: Mapping[str, Any]) -> str | None:
    """The workload source (trace | arrivals | clients) the overrides set keys of, if any."""
    found = {k.split(".")[1] for k in overrides if k.startswith("workload.") and
             len(k.split(".")) > 2 and k.split(".")[1] in _SOURCES}  # fmt: skip
    if len(found) > 1:
        raise SpecError("overrides", "workload", ", ".join(sorted(found)),
                        "set keys of only one of trace, arrivals, clients")  # fmt: skip
    return found.pop() if found else None


def _workload_source(cfg: Any) -> str | None:
    wl = cfg.workload
    return next((s for s in _SOURCES if getattr(wl, s, None) is not None), None)


def _switch_source(data: dict, source: str, overrides: Mapping[str, Any]) -> dict:
    """Setting a key of another workload source switches to it: the old source is dropped. A new
    ``arrivals`` block without a process is Poisson (vLLM --request-rate). Leaving a trace without
    giving lengths keeps the trace's (prompt, output) pairs as an empirical length distribution."""
    wl = dict(data.get("workload") or {})
    trace = wl.get("trace")
    for s in _SOURCES:
        wl.pop(s, None)
    if source == "clients":  # a concurrency cap belongs to open-loop sources only
        wl.pop("max_concurrency", None)
    if source == "arrivals" and "workload.arrivals.process" not in overrides:
        wl["arrivals"] = {"process": "poisson"}
    else:
        wl[source] = {}
    sets_lengths = any(k.startswith("workload.lengths") for k in overrides)
    if trace and wl.get("lengths") is None and not sets_lengths:
        wl["lengths"] = {"empirical": trace["path"]}
        if trace.get("format"):
            wl["lengths"]["format"] = trace["format"]
    sized = any(k in overrides for k in ("workload.num_requests", "workload.duration_s"))
    if trace and wl.get("num_requests") is None and wl.get("duration_s") is None and not sized:
        # `run --rate 6` on the default: as many requests as the trace it replaced held
        from servesim.workload.fasttrace import trace_columns

        wl["num_requests"] = len(trace_columns(trace["path"], trace.get("format")))
    data = dict(data)
    data["workload"] = wl
    return data


def build_result(raw: Any, cfg: Any) -> Result:
    """Summary (metrics + energy + cost) and DataFrames from an engine run."""
    sections = _energy_and_cost(metrics.measure(raw, cfg), raw, cfg)
    summary = sections.flat()
    # prediction intervals from the calibration residuals (servesim/cost/intervals.py)
    interval = metrics.Keyed(run_intervals(summary, cfg))
    summary.update(interval.flat())
    sections = dataclasses.replace(sections, interval=interval)
    # the frames are built on first use
    return Result(summary=_clean(summary), config=cfg, raw=raw, sections=sections)


def requests_frame(raw: Any) -> pd.DataFrame:
    """Per-request records plus derived ttft_s, tpot_s (NaN for one output token), e2el_s, queue_s."""
    import pandas as pd

    df = pd.DataFrame({k: np.asarray(v) for k, v in raw.requests.items()}, copy=False)
    if len(df):
        df["ttft_s"] = df["first_token_s"] - df["arrival_s"]
        df["e2el_s"] = df["finish_s"] - df["arrival_s"]
        out1 = (df["output_tokens"] - 1).where(df["output_tokens"] > 1)
        df["tpot_s"] = (df["e2el_s"] - df["ttft_s"]) / out1
        df["queue_s"] = df["scheduled_s"] - df["arrival_s"]
    return df


def _energy_and_cost(sections: Any, raw: Any, cfg: Any) -> Any:
    """The summary with its energy and cost sections (docs/energy-and-cost.md)."""
    from servesim.accounting import costing, energy

    used = energy.measure(raw, cfg)
    return dataclasses.replace(sections, energy=used, cost=costing.measure(raw, cfg, used.flat()))


def auto_interval(sim_end_s: float, bins: int = 500) -> float:
    """The smallest 1-2-5 x 10^k step giving at most ``bins`` bins (at least 1 ms)."""
    span = max(float(sim_end_s), 1e-3) / bins
    exp = math.floor(math.log10(span))
    for mult in (1, 2, 5, 10):
        step = mult * 10.0**exp
        if step >= span * (1 - 1e-12):
            return max(float(f"{step:.12g}"), 1e-3)
    return 10.0 ** (exp + 1)


# ------------------------------------------------------------------------------ writing


def _plain(x: Any) -> Any:
    """Python scalars/lists/dicts from numpy types and tuples, for YAML and JSON."""
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return [_plain(v) for v in x.tolist()]
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        x = float(x)
    if isinstance(x, float) and not math.isfinite(x):
        return None  # JSON has no NaN/inf; undefined values are null
    return x


def _clean(summary: dict[str, Any]) -> dict[str, Any]:
    return {str(k): _plain(v) for k, v in summary.items()}


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(_plain(data), indent=1, allow_nan=False) + "\n", encoding="utf-8")


def _check_target(target: Path) -> None:
    check_writable_parent(target, "--out")
    if target.exists() and not target.is_dir():
        raise SpecError("--out", "out", str(target), "exists and is not a directory")
    if target.is_dir() and any(target.iterdir()) and not (target / "summary.json").is_file():
        raise SpecError(
            "--out", "out", str(target), "is a non-empty directory that is not a servesim result"
        )


def _replace_dir(new: Path, target: Path) -> None:
    """Rename ``new`` to ``target``; an old ``target`` is moved aside first and removed after."""
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.rmdir(old)
        os.rename(target, old)
    try:
        os.rename(new, target)
    except BaseException:
        if old is not None:
            os.rename(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _stderr_progress(*args: Any, **_kw: Any) -> None:
    """Default progress line: ``done/total`` requests (the engine's callback arguments)."""
    if len(args) >= 2 and args[1]:
        sys.stderr.write(f"\r{args[0]}/{args[1]} requests")
    elif args:
        sys.stderr.write(f"\r{args[0]} requests")
    sys.stderr.flush()
