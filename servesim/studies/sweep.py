"""Parameter sweeps: a grid (and zip) over any config key, repeated seeds, one result row per point.

A sweep spec (YAML or mapping):

    base: configs/llama8b.yaml        # a config path (relative to the spec file) or an inline config
    grid: {deployment.pools.0.scheduler.max_num_batched_tokens: [512, 2048]}   # cross product
    zip:  {deployment.pools.0.hardware: [h100-sxm, h200-sxm],                # walked together,
           deployment.pools.0.parallelism.tp: [2, 1]}                         # crossed with grid
    seeds: [0, 1]                      # or repeat: 3 (seeds 0..2); absent = the base config's seed
    metrics: [ttft_ms_p99, tpot_ms_p99]   # summary keys in the table; absent = DEFAULT_METRICS; "all"
    out: results/chunk                 # optional, inside the spec file's folder (default NAME_results/,
                                       # NAME = the spec's `name` or its file stem)

Every point is keyed by a content hash of (base config content, overrides, seed). A finished point
is written atomically as `points/<hash>.json` (its whole scalar summary), so an interrupted sweep
restarted skips finished points (points that failed are retried) and ends with exactly one row
per point; the table
(`results.parquet`, `results.csv`) is rebuilt from the point files, never appended to.

Points run on a local process pool (default) or on a Dask distributed cluster (`dask=ADDRESS`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from servesim._callable import make_callable
from servesim._files import (
    FILE_MODE,
    check_out_path,
    contained,
    read_table,
    share_mode,
    write_atomic,
)
from servesim.specs.common import (
    SpecError,
    check_keys,
    get_number,
    load_json,
    load_yaml,
    require_mapping,
)

# The metrics a sweep table holds unless the spec names others (summary keys of servesim.simulate).
DEFAULT_METRICS: tuple[str, ...] = (
    "completed",
    "duration_s",
    "request_throughput",
    "output_throughput",
    "total_token_throughput",
    "ttft_ms_mean",
    "ttft_ms_median",
    "ttft_ms_p90",
    "ttft_ms_p99",
    "tpot_ms_mean",
    "tpot_ms_median",
    "tpot_ms_p90",
    "tpot_ms_p99",
    "itl_ms_p99",
    "e2el_ms_median",
    "e2el_ms_p99",
    "goodput_fraction",
    "goodput_rps",
    "mfu",
    "mbu",
    "kv_usage_mean",
    "preemptions",
    "energy_kwh",
    "j_per_output_token",
    "monthly_usd",
    "usd_per_mtok_output",
    "usd_per_mtok_blended",
)

SPEC_KEYS = ("name", "base", "grid", "zip", "seeds", "repeat", "metrics", "out",
             "workload", "workloads", "target", "targets", "max_points")  # fmt: skip
# Points a sweep may expand to (grid x zip x seeds), checked before expanding: a cap on a typo
# like `repeat: 1000000000`; the spec's `max_points` raises it (docs/reliability.md).
DEFAULT_MAX_POINTS = 100_000
POINTS_DIR = "points"
TABLE_PARQUET = "results.parquet"
TABLE_CSV = "results.csv"
META_FILE = "sweep.json"

Runner = Callable[[Any, dict, "int | None"], Mapping[str, Any]]


@dataclass(frozen=True)
class Point:
    """One run of a sweep: the base config plus dotted-key overrides and a seed."""

    key: str  # content hash: same base content, overrides and seed -> same key
    overrides: tuple[tuple[str, Any], ...]
    seed: int | None

    def inputs(self) -> dict[str, Any]:
        return dict(self.overrides)


@dataclass
class SweepSpec:
    base: Any  # config path (str) or mapping, as simulate() takes it
    base_content: Any  # what the hash covers: the mapping (a path's file content)
    grid: dict[str, list]
    zipped: dict[str, list]
    seeds: list[int | None]
    metrics: list[str] | None  # None = every scalar summary key ("all")
    out: Path | None
    name: str
    where: str
    points: list[Point] = field(default_factory=list)

    @property
    def input_keys(self) -> list[str]:
        return [*self.grid, *self.zipped]


# --------------------------------------------------------------------------- spec


def load_sweep_spec(spec: str | Path | Mapping[str, Any]) -> SweepSpec:
    """Validate a sweep spec (path or mapping) and expand its points."""
    if isinstance(spec, Mapping):
        data, where, root = spec, "<sweep>", Path.cwd()
        stem = str(spec.get("name") or "sweep")
    else:
        path = Path(spec)
        data = load_yaml(path)
        if data is None:
            raise SpecError(str(path), "", "<empty>", "the sweep file is empty")
        data = require_mapping(data, str(path), "")
        where, root = str(path), path.resolve().parent
        stem = str(data.get("name") or path.stem) if isinstance(data, Mapping) else path.stem
    check_keys(data, SPEC_KEYS, where, "")
    if data.get("workload") or data.get("target"):  # named workload/target (planning.catalogs)
        from servesim.studies.planning.catalogs import sweep_named

        data = sweep_named(data, root)
    base, base_content = _parse_base(data, where, root)
    grid = _parse_axes(data.get("grid"), where, "grid")
    zipped = _parse_axes(data.get("zip"), where, "zip")
    lengths = {len(v) for v in zipped.values()}
    if len(lengths) > 1:
        raise SpecError(where, "zip", sorted(lengths), "all zip lists must have the same length")
    dup = set(grid) & set(zipped)
    if dup:
        raise SpecError(where, "zip", sorted(dup), "a key cannot be in both grid and zip")
    max_points = get_number(data, "max_points", where, default=DEFAULT_MAX_POINTS, minimum=1,
                            integer=True)  # fmt: skip
    _check_points(data, grid, zipped, max_points, where)
    seeds = _parse_seeds(data, where)
    metrics = _parse_metrics(data.get("metrics", None), where)
    out = data.get("out")
    if out is not None and not isinstance(out, str):
        raise SpecError(where, "out", out, "must be a directory path")
    out_path = (
        # a spec may come from someone else: its `out` stays beside it (--out goes anywhere)
        (contained(root, out, where, "out") if not isinstance(spec, Mapping) else root / out)
        if out
        else (
            None
            if isinstance(spec, Mapping)
            else contained(root, f"{stem}_results", where, "name")  # `name: ../../x` is refused
        )
    )
    result = SweepSpec(base, base_content, grid, zipped, seeds, metrics, out_path, stem, where)
    result.points = expand_points(result)
    return result


def _parse_base(data: Mapping, where: str, root: Path) -> tuple[Any, Any]:
    if "base" not in data:
        raise SpecError(where, "base", "<missing>", "required: a config path or an inline config")
    base = data["base"]
    if isinstance(base, Mapping):
        return dict(base), dict(base)
    if isinstance(base, str):
        path = Path(base) if Path(base).is_absolute() else root / base
        content = load_yaml(path, where=f"{where}: base")
        return str(path), content
    raise SpecError(where, "base", base, "must be a config path or an inline config mapping")


def _parse_axes(axes: Any, where: str, name: str) -> dict[str, list]:
    if axes is None:
        return {}
    axes = require_mapping(axes, where, name)
    out: dict[str, list] = {}
    for key, values in axes.items():
        if not isinstance(key, str) or not key:
            raise SpecError(where, name, key, "keys are dotted config keys")
        if not isinstance(values, list) or not values:
            raise SpecError(where, f"{name}.{key}", values, "must be a non-empty list of values")
        out[key] = list(values)
    return out


def _check_points(data: Mapping, grid: dict, zipped: dict, cap: int, where: str) -> None:
    """SpecError when grid x zip x seeds would pass ``cap`` points (counted, not expanded)."""
    n = math.prod(len(v) for v in grid.values()) * (
        len(next(iter(zipped.values()))) if zipped else 1
    )
    seeds = data.get("seeds", data.get("repeat", 1))
    n_seeds = len(seeds) if isinstance(seeds, list) else seeds if _is_int(seeds) else 1
    if n * max(1, n_seeds) > cap:
        raise SpecError(where, "grid", f"{n:,} combinations x {n_seeds:,} seeds",
                        f"over the cap max_points = {cap:,}; raise max_points in the sweep spec "
                        "to allow it")  # fmt: skip


def _parse_seeds(data: Mapping, where: str) -> list[int | None]:
    if "seeds" in data and "repeat" in data:
        raise SpecError(where, "seeds", data["seeds"], "give seeds or repeat, not both")
    if "seeds" in data:
        seeds = data["seeds"]
        ok = isinstance(seeds, list) and seeds and all(_is_int(s) for s in seeds)
        if not ok or len(set(seeds)) != len(seeds):
            raise SpecError(where, "seeds", seeds, "must be a non-empty list of distinct integers")
        return [int(s) for s in seeds]
    if "repeat" in data:
        n = data["repeat"]
        if not _is_int(n) or n < 1:
            raise SpecError(where, "repeat", n, "must be an integer >= 1")
        return list(range(int(n)))
    return [None]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _parse_metrics(metrics: Any, where: str) -> list[str] | None:
    if metrics is None:
        return list(DEFAULT_METRICS)
    if metrics == "all":
        return None
    if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics) or not metrics:
        raise SpecError(where, "metrics", metrics, 'must be a list of summary keys or "all"')
    return list(metrics)


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def expand_points(spec: SweepSpec) -> list[Point]:
    """Grid product x zip tuples x seeds, in that nesting order (deterministic)."""
    grid_combos = list(itertools.product(*spec.grid.values())) if spec.grid else [()]
    n_zip = len(next(iter(spec.zipped.values()))) if spec.zipped else 1
    zip_rows = (
        [tuple(v[i] for v in spec.zipped.values()) for i in range(n_zip)] if spec.zipped else [()]
    )
    base_hash = hashlib.sha256(_canonical(spec.base_content).encode()).hexdigest()
    points: list[Point] = []
    for combo in grid_combos:
        for zrow in zip_rows:
            overrides = tuple(zip(spec.grid, combo)) + tuple(zip(spec.zipped, zrow))
            for seed in spec.seeds:
                text = _canonical({"base": base_hash, "overrides": sorted(overrides), "seed": seed})
                key = hashlib.sha256(text.encode()).hexdigest()[:20]
                points.append(Point(key, overrides, seed))
    return points


# --------------------------------------------------------------------------- running


def simulate_point(base: Any, overrides: dict, seed: int | None) -> dict[str, Any]:
    """The default runner: one servesim.simulate run; returns its scalar summary."""
    from servesim.result import simulate

    ov = dict(overrides)
    if seed is not None:
        ov["seed"] = seed
    return dict(simulate(base, overrides=ov).summary)


def _check_some_point_valid(base: Any, todo: list[Point]) -> None:
    """A sweep none of whose points is a valid config (a typo in a grid key, a base that does
    not load) is a bad input: its first error, before anything is run or written. Single bad
    points (e.g. a TP that cannot hold the model) stay rows with their error."""
    from servesim.result import resolve_config

    first: SpecError | None = None
    for point in todo:
        ov = dict(point.inputs())
        if point.seed is not None:
            ov["seed"] = point.seed
        try:
            resolve_config(base, ov)
            return
        except SpecError as exc:
            first = first or exc
    if first is not None:
        raise first


def _run_one(runner: Runner, base: Any, point: Point) -> dict[str, Any]:
    """Worker side: a bad point (SpecError, e.g. does not fit) is a finished row with its error."""
    try:
        summary = runner(base, point.inputs(), point.seed)
        return {"error": None, "summary": _scalars(summary)}
    except SpecError as exc:
        return {"error": str(exc), "summary": {}}


def _scalars(summary: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in summary.items():
        if isinstance(v, bool) or v is None or isinstance(v, (int, str)):
            out[k] = v
        elif isinstance(v, float) or hasattr(v, "__float__"):
            try:
                fv = float(v)
            except (TypeError, ValueError):
                continue
            out[k] = fv if math.isfinite(fv) else None
    return out


class _Progress:
    """The sweep's bar (servesim._progress: rich, with rate and ETA) over points."""

    def __init__(self, total: int, done: int, enabled: bool):
        from servesim._progress import Bar

        self.done = done
        self.bar = Bar("sweep", total, "pt", enabled=enabled and total > 0)
        self.bar.update(done)

    def step(self) -> None:
        self.done += 1
        self.bar.update(self.done)

    def close(self) -> None:
        self.bar.close()


def sweep(
    spec_path_or_dict: str | Path | Mapping[str, Any],
    jobs: int | None = None,
    dask: Any = None,
    out: str | Path | None = None,
    *,
    runner: Runner | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Run every point of a sweep not yet done; return the table (one row per point, in order).

    jobs: local worker processes (default os.cpu_count(); 1 runs in this process).
    dask: a Dask scheduler address (or a dask.distributed.Client) to run the points on instead.
    out: result directory (overrides the spec's); None for a mapping spec without `out` keeps
         results in memory only (no resume).
    runner: (base, overrides, seed) -> summary mapping; default servesim.simulate.
    """
    if isinstance(dask, str) and not _DASK_ADDRESS.match(dask.strip()):
        _dask_client(None, dask)  # the one-line error, before any work
    spec = load_sweep_spec(spec_path_or_dict)
    out_dir = Path(out) if out is not None else spec.out
    if out_dir is not None:
        check_out_path(out_dir, "sweep", is_dir=True)
    runner = runner or simulate_point
    records: dict[str, dict] = {}
    if out_dir is not None:
        records.update(_load_records(out_dir, spec.points))
    todo = [p for p in spec.points if p.key not in records]
    if runner is simulate_point:
        _check_some_point_valid(spec.base, todo)
    bar = _Progress(len(spec.points), len(spec.points) - len(todo), progress)

    def done(point: Point, result: dict) -> None:
        rec = {"point": point.key, "inputs": point.inputs(), "seed": point.seed, **result}
        if out_dir is not None:
            write_atomic(out_dir / POINTS_DIR / f"{point.key}.json", _canonical(rec))
        records[point.key] = rec
        bar.step()

    try:
        if todo and dask is not None:
            _run_dask(todo, spec.base, runner, dask, done)
        elif todo:
            _run_local(todo, spec.base, runner, jobs, done)
    finally:
        bar.close()
    table = build_table(spec, records)
    if out_dir is not None:
        write_table(out_dir, spec, table)
    return table


def _run_local(todo: list[Point], base: Any, runner: Runner, jobs: int | None, done) -> None:
    jobs = jobs or os.cpu_count() or 1
    if jobs < 1:
        raise SpecError("sweep", "jobs", jobs, "must be >= 1")
    if jobs == 1 or len(todo) == 1:
        for p in todo:
            done(p, _run_one(runner, base, p))
        return
    with ProcessPoolExecutor(max_workers=min(jobs, len(todo))) as pool:
        futures = {pool.submit(_run_one, runner, base, p): p for p in todo}
        try:
            for fut in as_completed(futures):
                done(futures[fut], fut.result())
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise


def _run_dask(todo: list[Point], base: Any, runner: Runner, dask: Any, done) -> None:
    try:
        from dask.distributed import Client
        from dask.distributed import as_completed as dask_completed
    except ImportError:  # optional extra
        raise SpecError("sweep", "dask", dask, "needs dask[distributed] installed") from None
    own = isinstance(dask, str)
    client = _dask_client(Client, dask) if own else dask
    try:
        futures = [client.submit(_run_one, runner, base, p, pure=False) for p in todo]
        by_key = {f.key: p for f, p in zip(futures, todo)}
        for fut in dask_completed(futures):
            done(by_key[fut.key], fut.result())
    finally:
        if own:
            client.close()


DASK_CONNECT_S = 5.0  # an unreachable scheduler fails after this, not after dask's 30 s default
_DASK_ADDRESS = re.compile(r"^([a-z0-9+]+://\S+|[^\s/:]+:\d+)$", re.IGNORECASE)


def _dask_client(client_cls: Any, address: str) -> Any:
    """A Client for ``address`` (``tcp://host:8786``, ``host:8786``); a malformed address or an
    unreachable scheduler is one SpecError line, after at most DASK_CONNECT_S seconds."""
    if not _DASK_ADDRESS.match(address.strip()):
        raise SpecError("sweep", "dask", address,
                        "not a scheduler address (expected tcp://HOST:PORT or HOST:PORT)")  # fmt: skip
    try:
        return client_cls(address.strip(), timeout=DASK_CONNECT_S)
    except (OSError, TimeoutError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:120] or exc.__class__.__name__
        raise SpecError("sweep", "dask", address, f"cannot reach the scheduler: {reason}") from None


# --------------------------------------------------------------------------- the table


def _load_records(out_dir: Path, points: Iterable[Point]) -> dict[str, dict]:
    """Finished points of this sweep found on disk. Unreadable files and points that ended with an
    error count as not done: an error may come from a catalog file fixed since, and reruns cheaply."""
    records = {}
    for p in points:
        f = out_dir / POINTS_DIR / f"{p.key}.json"
        if f.is_file():
            try:
                rec = json.loads(f.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if rec.get("error") is None:
                records[p.key] = rec
    return records


def build_table(spec: SweepSpec, records: Mapping[str, dict]) -> pd.DataFrame:
    """One row per finished point, in the spec's point order: point, inputs, seed, error, metrics."""
    metrics = spec.metrics
    if metrics is None:  # "all": the union of scalar summary keys, first-seen order
        seen: dict[str, None] = {}
        for p in spec.points:
            for k in records.get(p.key, {}).get("summary", {}):
                seen.setdefault(k, None)
        metrics = list(seen)
    rows = []
    for p in spec.points:
        rec = records.get(p.key)
        if rec is None:
            continue
        row: dict[str, Any] = {
            "point": p.key,
            **p.inputs(),
            "seed": p.seed,
            "error": rec.get("error"),
        }
        summary = rec.get("summary", {})
        for m in metrics:
            row[m] = summary.get(m)
        rows.append(row)
    columns = ["point", *spec.input_keys, "seed", "error", *metrics]
    table = pd.DataFrame(rows, columns=columns)
    for m in metrics:  # numbers stay numbers (None -> NaN); text metrics stay text
        values = table[m].dropna()
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            table[m] = pd.to_numeric(table[m], errors="coerce")
    return table


def write_table(out_dir: Path, spec: SweepSpec, table: pd.DataFrame) -> None:
    """results.parquet + results.csv + sweep.json (what the inputs and metrics columns are)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    pq = table.copy()
    for col in [*spec.input_keys, "seed", "error"]:
        if pq[col].dtype == object:  # mixed types (e.g. hardware names and numbers) -> text
            pq[col] = pq[col].map(
                lambda v: None if v is None else str(v) if not isinstance(v, str) else v
            )
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".results.", suffix=".parquet")
    os.close(fd)
    share_mode(tmp)  # mkstemp makes 0600
    try:
        pq.to_parquet(tmp, index=False)
        os.chmod(tmp, FILE_MODE)  # mkstemp's 0600 -> what open() would give
        os.replace(tmp, out_dir / TABLE_PARQUET)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    write_atomic(out_dir / TABLE_CSV, table.to_csv(index=False))
    meta = {
        "name": spec.name,
        "inputs": spec.input_keys,
        "metrics": [
            c for c in table.columns if c not in ("point", "seed", "error", *spec.input_keys)
        ],
        "points": len(spec.points),
        "finished": len(table),
    }
    write_atomic(out_dir / META_FILE, json.dumps(meta, indent=2) + "\n")


def load_table(path: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """A sweep table (directory, .parquet or .csv) and its input columns (from sweep.json if any)."""
    p = Path(path)
    d = p if p.is_dir() else p.parent
    if p.is_dir():
        p = p / TABLE_PARQUET if (p / TABLE_PARQUET).is_file() else p / TABLE_CSV
    if not p.is_file():
        raise SpecError(
            str(path), "", str(p), "no sweep table (results.parquet or results.csv) here"
        )
    table = read_table(p)
    inputs: list[str] = []
    meta = d / META_FILE
    if meta.is_file():
        # sweep.json is optional: one that is unreadable or of the wrong shape names no inputs
        try:
            data = load_json(meta)
        except SpecError:
            data = {}
        raw = data.get("inputs", []) if isinstance(data, dict) else []
        inputs = [x for x in raw if isinstance(x, str)] if isinstance(raw, list) else []
    return table, inputs


make_callable(__name__, sweep)
