"""A virtual vLLM benchmark_serving run, and whole benchmark matrices of them.

`bench(**kwargs)` takes the real client's arguments (vllm/benchmarks/serve.py,
benchmarks/benchmark_serving.py: --dataset-name random, --random-input-len, --random-output-len,
--random-range-ratio, --num-prompts, --max-concurrency, --request-rate, --burstiness,
--percentile-metrics, --metric-percentiles, --goodput, --seed, --model, ...) plus the deployment
(hardware, parallelism, instances, scheduler, or a full config file), simulates the run and returns
the client's result JSON: same keys, meanings and units (durations in s, throughputs per s,
latency statistics in ms). What differs from the real client:
- `date` is null (results hold no wall clock) and the default file name has no timestamp;
- the output length is always reached (the simulator has no EOS): as with --ignore-eos;
- --request-rate R with --max-concurrency N is an open-loop workload capped at N outstanding
  (`workload.max_concurrency`): a request waits for a slot and its latencies count from when it
  is sent, as in the client, whose clock starts inside the semaphore;
- a `servesim` key holds the deployment that produced the numbers (and marks the file simulated).

A matrix (YAML) runs ISL/OSL x concurrency x TP points, one result file per point named
`{prefix}_tp{tp}_isl{isl}_osl{osl}_conc{conc}.json`, skipping files already there.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from servesim._callable import make_callable
from servesim._files import check_out_path, contained, write_atomic
from servesim.cost import intervals  # calibration bands in the servesim block
from servesim.specs.common import SpecError, check_keys, load_yaml, require_mapping
from servesim.studies.bench_args import (  # noqa: F401  (every name stays importable from here)
    BENCH_DEFAULTS,
    _apply_deployment,
    _args,
    _base_config,
    _check_dataset,
    _check_int,
    _check_ramp,
    _length,
    _request_columns,
    _workload,
    bench_config,
    parse_goodput,
)
from servesim.studies.bench_output import (  # noqa: F401  (format_summary, result_path: public here)
    METRIC_HEADERS,
    PERCENTILE_METRICS,
    _parse_list,
    format_summary,
    parse_percentiles,
    result_date,
    result_path,
    save_result,
)

# Top-level keys of `vllm bench serve --save-result` (vllm/benchmarks/serve.py) for a generation
# run without --save-detailed, before the per-metric statistics; benchmark_serving.py writes a
# subset of them (no endpoint_type, label, failed, max_*, rtfx).
CLIENT_KEYS = (
    "date", "endpoint_type", "backend", "label", "model_id", "tokenizer_id", "num_prompts",
    "request_rate", "burstiness", "max_concurrency", "duration", "completed", "failed",
    "total_input_tokens", "total_output_tokens", "request_throughput", "request_goodput",
    "output_throughput", "total_token_throughput", "max_output_tokens_per_s",
    "max_concurrent_requests", "rtfx",
)  # fmt: skip

BACKEND = "servesim"


# --------------------------------------------------------------------------- one run


def bench(**kwargs: Any) -> dict[str, Any]:
    """One virtual `vllm bench serve` run -> its result JSON (a dict); saved when save_result.

    Takes the client's arguments (BENCH_DEFAULTS; the flags bench_flags.NO_EFFECT lists are
    accepted and ignored) plus the deployment.

    Example:
        >>> res = bench(model="llama-3.1-8b", hw="h100-sxm", random_input_len=256,
        ...             random_output_len=32, num_prompts=20, max_concurrency=4)
        >>> res["completed"], res["max_concurrency"]
        (20, 4)
    """
    from servesim.accounting.metrics import benchmark_json
    from servesim.result import simulate

    a = _args(kwargs)
    cfg = bench_config(**kwargs)
    metrics = _parse_list(a["percentile_metrics"], "percentile_metrics", PERCENTILE_METRICS)
    percentiles = parse_percentiles(a["metric_percentiles"])
    saving = bool(a["save_result"] or a["append_result"])
    date = result_date(a["date"]) if saving or a["date"] is not None else None
    path = result_path(a, cfg.get("model"), date) if saving else None
    if path is not None:
        check_out_path(path, "bench", is_dir=False)
    from servesim._progress import Bar

    with Bar("bench", unit="req", enabled=not a["disable_tqdm"]) as bar:
        result = simulate(cfg, progress=bar if bar.enabled else False)
    raw = getattr(result, "raw", None)
    if raw is None:
        raise SpecError("bench", "", "Result", "servesim.simulate returned no raw run (Result.raw)")
    data = benchmark_json(
        result.summary,
        raw,
        result.config,
        detailed=bool(a["save_detailed"]),
        percentiles=percentiles,
    )
    if a["steady_state"]:
        data.update(_steady(result, a, percentiles))
    if a["save_detailed"] and "input_lens" in data:
        # the newest client also lists each request's send time (s from the benchmark start)
        arrival = np.asarray(raw.requests["arrival_s"], dtype=float)
        data["start_times"] = arrival.tolist()
    data = _finish(data, a, cfg, metrics, percentiles)
    data[BACKEND]["interval"] = intervals.nested(result.summary)  # calibration bands
    data["date"] = date
    if path is not None:
        save_result(path, data, append=bool(a["append_result"]))
    return data


def _steady(result: Any, a: Mapping[str, Any], percentiles: list[float]) -> dict[str, Any]:
    from servesim.studies.steady import steady_stats

    wl = result.config.workload
    clients = getattr(wl, "clients", None)
    conc = clients.concurrency if clients is not None else int(a["max_concurrency"] or 0)
    return steady_stats(result, conc, clients is not None, percentiles)


def _finish(data: dict, a: Mapping, cfg: Mapping, metrics: list[str], percentiles) -> dict:
    """Client key order, client-side fields, only the selected metrics, and the servesim block."""
    head = {
        "date": None,
        "endpoint_type": BACKEND,
        "backend": BACKEND,
        "label": a["label"],  # the client stores --label as given (None by default)
        "model_id": a["model"] or data.get("model_id"),
        "tokenizer_id": a["tokenizer"] or a["model"] or data.get("tokenizer_id"),
        "num_prompts": int(a["num_prompts"]),
    }
    head.update(parse_metadata(a["metadata"]))
    rate = float(a["request_rate"])
    head["request_rate"] = "inf" if math.isinf(rate) else rate
    head["burstiness"] = float(a["burstiness"])
    head["max_concurrency"] = a["max_concurrency"]
    if a["ramp_up_strategy"]:
        for key in ("ramp_up_strategy", "ramp_up_start_rps", "ramp_up_end_rps"):
            head[key] = a[key]
    out = dict(head)
    for key in CLIENT_KEYS:
        if key not in out:
            out[key] = data.get(key)
    out["rtfx"] = 0.0  # audio only
    if not parse_goodput(a["goodput"]):
        out["request_goodput"] = None
    for key in ("input_lens", "output_lens", "start_times", "ttfts", "itls", "generated_texts",
                "errors"):  # fmt: skip
        if key in data:
            out[key] = data[key]
    for m in metrics:
        for s in ("mean", "median", "std"):
            out[f"{s}_{m}_ms"] = data.get(f"{s}_{m}_ms")
        for p in percentiles:
            word = str(int(p)) if int(p) == p else str(p)
            out[f"p{word}_{m}_ms"] = data.get(f"p{word}_{m}_ms")
    for key in data:  # the speculative block, after the latencies as the client writes it
        if key.startswith("spec_decode_"):
            out[key] = data[key]
    out[BACKEND] = _provenance(cfg, a, data)
    return out


def parse_metadata(items: Any) -> dict[str, str]:
    """vLLM --metadata KEY=VALUE items -> {key: value}, strings as the client stores them."""
    out: dict[str, str] = {}
    for item in items or ():
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise SpecError("bench", "metadata", item, "KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def _provenance(cfg: Mapping, a: Mapping, data: Mapping) -> dict[str, Any]:
    pools = cfg.get("deployment", {}).get("pools", [])
    out = {
        "simulated": True,
        "model": cfg.get("model"),
        "dtype": cfg.get("dtype"),
        "pools": copy.deepcopy(pools),
        "config": None
        if a["config"] is None or isinstance(a["config"], Mapping)
        else str(a["config"]),
        "seed": cfg.get("seed"),
        # the simulator has no EOS: every output runs to its length, as with --ignore-eos
        "ignore_eos": True,
        "dataset_name": a["dataset_name"],
        "dataset_path": None if a["dataset_path"] is None else str(a["dataset_path"]),
        "num_warmups": int(a["num_warmups"]),
        "engines": _engines_ran(cfg),
    }
    if a["steady_state"]:
        out["steady_state"] = {k: data.get(k) for k in ("steady_window", "steady_requests")}
    return out


def _engines_ran(cfg: Mapping) -> list[dict[str, Any]]:
    """Per pool, what the engine profile ran (attention backend, all-reduce, graphs, fusions)."""
    from servesim.result import resolve_config
    from servesim.specs.engines import describe, kernels_for

    rc = resolve_config(dict(cfg))
    return [
        {
            "role": p.role,
            **describe(
                kernels_for(p.scheduler.engine, p.hardware, rc.dtypes, p.scheduler.max_num_seqs)
            ),
        }
        for p in rc.deployment.pools
    ]


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    write_atomic(path, json.dumps(data))


# --------------------------------------------------------------------------- matrices

MAX_MATRIX_POINTS = 100_000  # runs of one matrix (tp x isl/osl x conc), counted before listing
MATRIX_KEYS = ("prefix", "result_dir", "tp", "isl_osl", "isl", "osl", "conc", "prompts_per_conc")
_MATRIX_PASS = tuple(k for k in BENCH_DEFAULTS if k not in ("tp", "max_concurrency", "num_prompts",
                     "random_input_len", "random_output_len", "result_dir", "result_filename",
                     "save_result", "request_rate", "burstiness", "append_result", "date",
                     "input_len", "output_len"))  # fmt: skip


def matrix_points(matrix: str | Path | Mapping[str, Any]) -> tuple[dict, list[dict]]:
    """Validate a matrix and list its points: (common kwargs, [{tp, isl, osl, conc, file}])."""
    if isinstance(matrix, Mapping):
        data, where, root = dict(matrix), "<matrix>", Path.cwd()
    else:
        data = dict(require_mapping(load_yaml(matrix), str(matrix), ""))
        where, root = str(matrix), Path(matrix).resolve().parent
    check_keys(data, (*MATRIX_KEYS, *_MATRIX_PASS, "num_prompts"), where, "")
    prefix = data.get("prefix")
    if not isinstance(prefix, str) or not prefix:
        raise SpecError(where, "prefix", prefix, "required: the result file name prefix")
    tps = _int_list(data, "tp", where, default=[1])
    concs = _int_list(data, "conc", where)
    if "isl_osl" in data:
        pairs = data["isl_osl"]
        if not isinstance(pairs, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(x, int) and x > 0 for x in p)
            for p in pairs
        ):
            raise SpecError(
                where, "isl_osl", pairs, "a list of [isl, osl] pairs of positive integers"
            )
        lengths = [tuple(p) for p in pairs]
    else:
        lengths = list(
            itertools.product(_int_list(data, "isl", where), _int_list(data, "osl", where))
        )
    per_conc = data.get("prompts_per_conc", 10)
    common = {k: data[k] for k in _MATRIX_PASS if k in data}
    if isinstance(common.get("config"), str) and not Path(common["config"]).is_absolute():
        common["config"] = str(root / common["config"])
    result_dir = Path(data.get("result_dir", "results"))
    if isinstance(matrix, Mapping):
        result_dir = result_dir if result_dir.is_absolute() else root / result_dir
    else:  # a matrix file may come from someone else: its results stay beside it
        result_dir = contained(root, result_dir, where, "result_dir")
    n_points = len(tps) * len(lengths) * len(concs)
    if n_points > MAX_MATRIX_POINTS:
        raise SpecError(where, "tp/isl_osl/conc", f"{n_points:,} points",
                        f"over the fixed cap of {MAX_MATRIX_POINTS:,} (docs/reliability.md)")  # fmt: skip
    points = []
    for tp, (isl, osl), conc in itertools.product(tps, lengths, concs):
        name = f"{prefix}_tp{tp}_isl{isl}_osl{osl}_conc{conc}.json"
        n = int(data["num_prompts"]) if "num_prompts" in data else int(conc * per_conc)
        points.append(
            {
                "tp": tp,
                "isl": isl,
                "osl": osl,
                "conc": conc,
                "num_prompts": n,
                "file": contained(result_dir, name, str(matrix), "prefix"),
            }
        )
    return common, points


def _int_list(data: Mapping, key: str, where: str, default: list[int] | None = None) -> list[int]:
    if key not in data:
        if default is None:
            raise SpecError(where, key, "<missing>", "required: a list of positive integers")
        return default
    v = data[key]
    v = [v] if isinstance(v, int) and not isinstance(v, bool) else v
    if not isinstance(v, list) or not v or not all(isinstance(x, int) and x > 0 for x in v):
        raise SpecError(where, key, v, "must be a list of positive integers")
    return v


def bench_matrix(
    matrix: str | Path | Mapping[str, Any],
    *,
    result_dir: str | Path | None = None,
    on_point: Callable[[dict, str], None] | None = None,
    runner: Callable[..., dict] | None = None,
) -> list[dict]:
    """Run every point of a matrix whose result file is missing; returns one status per point.

    Status: "done" (written now), "skipped" (file was there), "error" (SpecError, e.g. the model
    does not fit at that TP; no file is written, so a later run retries it).
    """
    common, points = matrix_points(matrix)
    runner = runner or bench
    paths = [Path(result_dir) / pt["file"].name if result_dir else pt["file"] for pt in points]
    for folder in sorted({p.parent for p in paths}):
        check_out_path(folder, "bench matrix", is_dir=True)
    statuses = []
    for pt, path in zip(points, paths):
        status: dict[str, Any] = {k: pt[k] for k in ("tp", "isl", "osl", "conc")}
        status["file"] = str(path)
        if path.is_file():
            status["status"] = "skipped"
        else:
            kwargs = {
                **common,
                "tp": pt["tp"],
                "random_input_len": pt["isl"],
                "random_output_len": pt["osl"],
                "max_concurrency": pt["conc"],
                "num_prompts": pt["num_prompts"],
                "request_rate": math.inf,
            }
            try:
                data = runner(**kwargs)
            except SpecError as exc:
                status.update(status="error", error=str(exc))
            else:
                write_json_atomic(path, data)
                status.update(status="done", output_throughput=data.get("output_throughput"))
        statuses.append(status)
        if on_point:
            on_point(status, status["status"])
    return statuses


make_callable(__name__, bench)
