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
from servesim.studies.bench_flags import DATASET_REASONS, DATASETS, NO_EFFECT
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
from servesim.studies.bench_requests import (
    HASH_BLOCK,
    prefix_hashes,
    random_lengths,
    request_table,
    write_trace,
)
from servesim.workload.datasets import FILE_DATASETS, dataset_lengths

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

BENCH_DEFAULTS: dict[str, Any] = {
    # the real client's arguments and defaults (bench_flags.py lists every flag)
    "dataset_name": "random",
    "dataset_path": None,
    "disable_shuffle": False,
    "no_oversample": False,
    "random_input_len": 1024,
    "random_output_len": 128,
    "random_range_ratio": 0.0,
    "random_prefix_len": 0,
    "input_len": None,  # vLLM's general lengths: override random_*_len (output: every dataset's)
    "output_len": None,
    "sharegpt_output_len": None,
    "custom_output_len": 256,
    "prefix_repetition_prefix_len": 256,
    "prefix_repetition_suffix_len": 256,
    "prefix_repetition_num_prefixes": 10,
    "prefix_repetition_output_len": 128,
    "tokenizer": None,
    "num_prompts": 1000,
    "max_concurrency": None,
    "request_rate": math.inf,
    "burstiness": 1.0,
    "ramp_up_strategy": None,
    "ramp_up_start_rps": None,
    "ramp_up_end_rps": None,
    "num_warmups": 0,
    "ignore_eos": False,
    "seed": 0,
    "percentile_metrics": "ttft,tpot,itl",
    "metric_percentiles": "99",
    "goodput": None,
    "save_result": False,
    "save_detailed": False,
    "append_result": False,
    "result_dir": None,
    "result_filename": None,
    "label": None,
    "metadata": None,
    "model": None,
    "disable_tqdm": False,
    # servesim's own: the steady-state window, the saved file's date
    "steady_state": False,
    "date": None,
    # the deployment (None = the base config's value)
    "config": None,
    "hw": None,
    "tp": None,
    "pp": None,
    "ep": None,
    "dtype": None,
    "instances": None,
    "scheduler": None,
    "engine": None,
    "max_num_seqs": None,
    "max_num_batched_tokens": None,
    "spec_method": None,
    "num_speculative_tokens": None,
    "spec_acceptance_rate": None,
}
BACKEND = "servesim"


# --------------------------------------------------------------------------- one run


def _base_config(config: Any) -> dict[str, Any]:
    if config is None:
        from servesim.specs.config import DEFAULT_CONFIG

        return copy.deepcopy(dict(DEFAULT_CONFIG))
    if isinstance(config, Mapping):
        return copy.deepcopy(dict(config))
    return dict(require_mapping(load_yaml(config), str(config), ""))


def parse_goodput(pairs: Any) -> dict[str, float]:
    """vLLM --goodput KEY:VALUE pairs (ms) -> {metric: ms}."""
    out: dict[str, float] = {}
    for pair in pairs or ():
        name, _, val = str(pair).partition(":")
        if name not in ("ttft", "tpot", "e2el"):
            raise SpecError("bench", "goodput", pair, "KEY:VALUE with KEY one of ttft, tpot, e2el")
        try:
            out[name] = float(val)
        except ValueError:
            raise SpecError("bench", "goodput", pair, "VALUE must be a number of ms") from None
        if out[name] < 0:
            raise SpecError("bench", "goodput", pair, "VALUE must be >= 0")
    return out


def _length(mean: int, ratio: float) -> dict[str, Any]:
    if ratio == 0:
        return {"dist": "fixed", "mean": int(mean)}
    return {"dist": "uniform", "mean": int(mean), "range_ratio": float(ratio)}


def bench_config(**kwargs: Any) -> dict[str, Any]:
    """The run config (a mapping for servesim.simulate) of one benchmark run.

    Example:
        >>> cfg = bench_config(random_input_len=512, random_output_len=64, max_concurrency=8)
        >>> cfg["workload"]["clients"], cfg["workload"]["num_requests"]
        ({'concurrency': 8}, 1000)
    """
    a = _args(kwargs)
    cfg = _base_config(a["config"])
    if a["model"]:
        cfg["model"] = a["model"]
    if a["dtype"]:
        cfg["dtype"] = a["dtype"]
    _apply_deployment(cfg, a)
    cfg["workload"] = _workload(a)
    cfg["seed"] = int(a["seed"])
    goodput = parse_goodput(a["goodput"])
    if goodput:  # per-request thresholds: vLLM's goodput counts requests within all of them
        cfg["slo"] = {f"{k}_ms": {"p99": v} for k, v in goodput.items()}
    return cfg


def _args(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    ignored = {f[2:].replace("-", "_") for f in NO_EFFECT}
    unknown = sorted(set(kwargs) - set(BENCH_DEFAULTS) - ignored)
    if unknown:
        raise SpecError(
            "bench",
            unknown[0],
            kwargs[unknown[0]],
            "unknown argument; allowed: " + ", ".join(BENCH_DEFAULTS),
        )
    a = {
        **BENCH_DEFAULTS,
        **{k: v for k, v in kwargs.items() if v is not None and k not in ignored},
    }
    # vLLM maps its general lengths onto every dataset's own (main_async in serve.py)
    if a["input_len"] is not None:
        a["random_input_len"] = a["input_len"]
    if a["output_len"] is not None:
        for key in ("random_output_len", "sharegpt_output_len", "custom_output_len",
                    "prefix_repetition_output_len"):  # fmt: skip
            a[key] = a["output_len"]
    for key in ("random_input_len", "random_output_len", "num_prompts"):
        _check_int(a, key, 1)
    for key in ("random_prefix_len", "num_warmups"):
        _check_int(a, key, 0)
    rate = float(a["request_rate"])
    if not rate > 0:
        raise SpecError("bench", "request_rate", a["request_rate"], "must be > 0 (or inf)")
    if a["max_concurrency"] is not None and a["max_concurrency"] < 1:
        raise SpecError("bench", "max_concurrency", a["max_concurrency"], "must be >= 1")
    if not float(a["burstiness"]) > 0:
        raise SpecError("bench", "burstiness", a["burstiness"], "must be > 0")
    if not 0 <= float(a["random_range_ratio"]) < 1:
        raise SpecError("bench", "random_range_ratio", a["random_range_ratio"], "must be in [0, 1)")
    _check_dataset(a)
    _check_ramp(a)
    return a


def _check_int(a: Mapping[str, Any], key: str, minimum: int) -> None:
    v = a[key]
    if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
        raise SpecError("bench", key, v, f"must be an integer >= {minimum}")


def _check_dataset(a: Mapping[str, Any]) -> None:
    name = a["dataset_name"]
    if name in DATASET_REASONS:
        raise SpecError("bench", "dataset_name", name, DATASET_REASONS[name])
    if name not in DATASETS:
        raise SpecError("bench", "dataset_name", name, "must be one of " + ", ".join(DATASETS))
    if name in FILE_DATASETS and not a["dataset_path"]:
        raise SpecError("bench", "dataset_path", None, f"--dataset-name {name} needs a file")
    if name not in FILE_DATASETS and a["dataset_path"]:  # vLLM refuses it the same way
        raise SpecError("bench", "dataset_path", a["dataset_path"],
                        f"not used by --dataset-name {name} (use sharegpt or custom)")  # fmt: skip


def _check_ramp(a: Mapping[str, Any]) -> None:
    """vLLM's ramp-up checks (main_async in serve.py)."""
    strategy = a["ramp_up_strategy"]
    if strategy is None:
        return
    if strategy not in ("linear", "exponential"):
        raise SpecError("bench", "ramp_up_strategy", strategy, "must be linear or exponential")
    if not math.isinf(float(a["request_rate"])):
        raise SpecError("bench", "request_rate", a["request_rate"],
                        "with --ramp-up-strategy the ramp sets the rate; drop --request-rate")  # fmt: skip
    lo, hi = a["ramp_up_start_rps"], a["ramp_up_end_rps"]
    if lo is None or hi is None:
        raise SpecError("bench", "ramp_up_start_rps", lo,
                        "--ramp-up-strategy needs --ramp-up-start-rps and --ramp-up-end-rps")  # fmt: skip
    if lo < 0 or hi < lo:
        raise SpecError("bench", "ramp_up_end_rps", hi, f"must be >= start ({lo}) >= 0")
    if lo <= 0:
        raise SpecError("bench", "ramp_up_start_rps", lo, "must be > 0 (a rate of 0 sends nothing)")


def _apply_deployment(cfg: dict[str, Any], a: Mapping[str, Any]) -> None:
    dep = cfg.setdefault("deployment", {})
    pools = dep.setdefault("pools", [{"role": "colocated"}])
    wanted = [
        a[k]
        for k in (
            "hw",
            "tp",
            "pp",
            "ep",
            "instances",
            "scheduler",
            "engine",
            "max_num_seqs",
            "max_num_batched_tokens",
            "spec_method",
            "num_speculative_tokens",
            "spec_acceptance_rate",
        )
    ]
    if len(pools) != 1 and any(v is not None for v in wanted):
        raise SpecError(
            "bench",
            "deployment.pools",
            len(pools),
            "--hw/--tp/... set a single-pool deployment; edit the config for pools",
        )
    pool = pools[0]
    if a["hw"]:
        pool["hardware"] = a["hw"]
    if a["instances"]:
        pool["instances"] = int(a["instances"])
    par = pool.setdefault("parallelism", {})
    for key in ("tp", "pp", "ep"):
        if a[key]:
            par[key] = int(a[key])
    if a["engine"] and a["config"] is None:
        # the embedded default's scheduler (sarathi, its limits) is vLLM's; an engine profile
        # brings its own policy and limits, as `run --engine` on a config without them
        pool["scheduler"] = {}
    sched = pool.setdefault("scheduler", {})
    if a["engine"] is not None and a["config"] is None:
        # the embedded default config spells out vLLM-style scheduler keys; an engine profile
        # fills only unset keys, so drop those defaults and let the engine's apply
        for key in ("policy", "max_num_seqs", "max_num_batched_tokens"):
            sched.pop(key, None)
    for key, name in (
        ("scheduler", "policy"),
        ("engine", "engine"),
        ("max_num_seqs", "max_num_seqs"),
        ("max_num_batched_tokens", "max_num_batched_tokens"),
    ):
        if a[key] is not None:
            sched[name] = a[key]
    for key, path in (("spec_method", ("method",)),
                      ("num_speculative_tokens", ("num_speculative_tokens",)),
                      ("spec_acceptance_rate", ("acceptance", "rate"))):  # fmt: skip
        if a[key] is not None:
            node = pool.setdefault("speculative", None) or {}
            pool["speculative"] = node
            if len(path) == 2:
                node = node.setdefault(path[0], {})
            node[path[-1]] = a[key]


def _workload(a: Mapping[str, Any]) -> dict[str, Any]:
    """The workload block: the synthetic spec when it is the client's (random lengths, all sent
    at once), else a request list drawn as the client draws it (bench_requests.py)."""
    rate = float(a["request_rate"])
    conc = a["max_concurrency"]
    if a["dataset_name"] == "random" and math.isinf(rate) and not a["ramp_up_strategy"]:
        wl: dict[str, Any] = {
            "num_requests": int(a["num_prompts"]),
            "lengths": {
                "input": _length(a["random_input_len"], float(a["random_range_ratio"])),
                "output": _length(a["random_output_len"], float(a["random_range_ratio"])),
            },
            # everything sent at once; the semaphore (if any) caps those in flight
            "clients": {"concurrency": int(conc) if conc else int(a["num_prompts"])},
        }
        if a["random_prefix_len"]:  # one prefix before every prompt, as vLLM's random dataset
            wl["prefix"] = {"shared_tokens": int(a["random_prefix_len"]), "groups": 1}
        return wl
    wl = {"trace": {"path": str(write_trace(_request_columns(a))), "format": "jsonl"}}
    if conc is not None:  # arrivals as drawn, at most `conc` outstanding (the semaphore)
        wl["max_concurrency"] = int(conc)
    return wl


def _request_columns(a: Mapping[str, Any]) -> dict[str, list]:
    n, seed = int(a["num_prompts"]), int(a["seed"])
    name = a["dataset_name"]
    prefix = None
    if name in FILE_DATASETS:
        out_len = a["sharegpt_output_len"] if name == "sharegpt" else a["custom_output_len"]
        lengths = dataset_lengths(
            name, a["dataset_path"], num_prompts=n, seed=seed, output_len=out_len,
            tokenizer=a["tokenizer"] or a["model"], disable_shuffle=bool(a["disable_shuffle"]),
            no_oversample=bool(a["no_oversample"]),
        )  # fmt: skip
    elif name == "prefix_repetition":
        p, sfx = int(a["prefix_repetition_prefix_len"]), int(a["prefix_repetition_suffix_len"])
        groups = max(int(a["prefix_repetition_num_prefixes"]), 1)
        lengths = (np.full(n, p + sfx), np.full(n, int(a["prefix_repetition_output_len"])))
        prefix = prefix_hashes(n, p, groups, seed)
    else:
        inp, out = random_lengths(a, n, seed)
        shared = int(a["random_prefix_len"])
        lengths = (inp + shared, out)
        prefix = prefix_hashes(n, shared, 1, seed) if shared >= HASH_BLOCK else None
    return request_table(a, lengths, prefix)


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
    from servesim.specs.dtypes import DTYPE_BYTES
    from servesim.specs.engines import describe, engine_kernels

    rc = resolve_config(dict(cfg))
    kv, w = DTYPE_BYTES[rc.dtypes.kv_cache], DTYPE_BYTES[rc.dtypes.weights]
    a = DTYPE_BYTES[rc.dtypes.activations]
    return [
        {"role": p.role, **describe(engine_kernels(p.scheduler.engine, p.hardware, kv, w, a))}
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
