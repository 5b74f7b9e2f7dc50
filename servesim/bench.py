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
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from servesim._callable import make_callable
from servesim._files import check_out_path, contained, write_atomic
from servesim.specs.common import SpecError, check_keys, load_yaml, require_mapping

PERCENTILE_METRICS = ("ttft", "tpot", "itl", "e2el")
METRIC_HEADERS = {
    "ttft": ("TTFT", "Time to First Token"),
    "tpot": ("TPOT", "Time per Output Token (excl. 1st token)"),
    "itl": ("ITL", "Inter-token Latency"),
    "e2el": ("E2EL", "End-to-end Latency"),
}
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
    # the real client's defaults
    "dataset_name": "random",
    "random_input_len": 1024,
    "random_output_len": 128,
    "random_range_ratio": 0.0,
    "num_prompts": 1000,
    "max_concurrency": None,
    "request_rate": math.inf,
    "burstiness": 1.0,
    "ignore_eos": False,
    "seed": 0,
    "percentile_metrics": "ttft,tpot,itl",
    "metric_percentiles": "99",
    "goodput": None,
    "save_result": False,
    "save_detailed": False,
    "result_dir": None,
    "result_filename": None,
    "label": None,
    "metadata": None,
    "model": None,
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


def _parse_list(text: Any, name: str, allowed: Sequence[str] | None = None) -> list[str]:
    items = [t.strip() for t in (text.split(",") if isinstance(text, str) else list(text))]
    items = [t for t in items if t]
    if allowed is not None:
        for t in items:
            if t not in allowed:
                raise SpecError("bench", name, t, "must be among " + ", ".join(allowed))
    return items


def parse_percentiles(text: Any) -> list[float]:
    out = []
    for t in _parse_list(text, "metric_percentiles"):
        try:
            p = float(t)
        except ValueError:
            raise SpecError(
                "bench", "metric_percentiles", t, "must be numbers, e.g. 50,90,99"
            ) from None
        if not 0 <= p <= 100:
            raise SpecError("bench", "metric_percentiles", t, "must be in [0, 100]")
        out.append(p)
    return out


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
    """The run config (a mapping for servesim.simulate) of one benchmark run."""
    a = _args(kwargs)
    if a["dataset_name"] != "random":
        raise SpecError(
            "bench",
            "dataset_name",
            a["dataset_name"],
            "only `random` (use --config with a trace workload for real traffic)",
        )
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
    unknown = sorted(set(kwargs) - set(BENCH_DEFAULTS))
    if unknown:
        raise SpecError(
            "bench",
            unknown[0],
            kwargs[unknown[0]],
            "unknown argument; allowed: " + ", ".join(BENCH_DEFAULTS),
        )
    a = {**BENCH_DEFAULTS, **{k: v for k, v in kwargs.items() if v is not None}}
    for key in ("random_input_len", "random_output_len", "num_prompts"):
        if not isinstance(a[key], int) or isinstance(a[key], bool) or a[key] < 1:
            raise SpecError("bench", key, a[key], "must be an integer >= 1")
    rate = float(a["request_rate"])
    if not rate > 0:
        raise SpecError("bench", "request_rate", a["request_rate"], "must be > 0 (or inf)")
    if a["max_concurrency"] is not None and a["max_concurrency"] < 1:
        raise SpecError("bench", "max_concurrency", a["max_concurrency"], "must be >= 1")
    if not float(a["burstiness"]) > 0:
        raise SpecError("bench", "burstiness", a["burstiness"], "must be > 0")
    return a


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
    sched = pool.setdefault("scheduler", {})
    for key, name in (
        ("scheduler", "policy"),
        ("engine", "engine"),
        ("max_num_seqs", "max_num_seqs"),
        ("max_num_batched_tokens", "max_num_batched_tokens"),
    ):
        if a[key] is not None:
            sched[name] = a[key]


def _workload(a: Mapping[str, Any]) -> dict[str, Any]:
    rate = float(a["request_rate"])
    conc = a["max_concurrency"]
    wl: dict[str, Any] = {
        "num_requests": int(a["num_prompts"]),
        "lengths": {
            "input": _length(a["random_input_len"], float(a["random_range_ratio"])),
            "output": _length(a["random_output_len"], float(a["random_range_ratio"])),
        },
    }
    if math.isinf(rate):
        # rate inf: every request is sent at once; the semaphore (if any) caps those in flight
        wl["clients"] = {"concurrency": int(conc) if conc else int(a["num_prompts"])}
    else:
        b = float(a["burstiness"])
        # vLLM draws gamma inter-arrivals with shape = burstiness: CV = 1/sqrt(burstiness)
        if b == 1.0:
            wl["arrivals"] = {"process": "poisson", "rate": rate}
        elif math.isinf(b):
            wl["arrivals"] = {"process": "constant", "rate": rate}
        else:
            wl["arrivals"] = {"process": "gamma", "rate": rate, "cv": 1.0 / math.sqrt(b)}
        if conc is not None:  # arrivals at the rate, at most `conc` outstanding (the semaphore)
            wl["max_concurrency"] = int(conc)
    return wl


def bench(**kwargs: Any) -> dict[str, Any]:
    """One virtual benchmark_serving run -> its result JSON (a dict); saved when save_result."""
    from servesim.metrics import benchmark_json
    from servesim.result import simulate

    a = _args(kwargs)
    cfg = bench_config(**kwargs)
    metrics = _parse_list(a["percentile_metrics"], "percentile_metrics", PERCENTILE_METRICS)
    percentiles = parse_percentiles(a["metric_percentiles"])
    if a["save_result"]:
        check_out_path(result_path(a, cfg.get("model")), "bench", is_dir=False)
    result = simulate(cfg)
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
    data = _finish(data, a, cfg, metrics, percentiles)
    if a["save_result"]:
        path = result_path(a, cfg.get("model"))
        write_json_atomic(path, data)
    return data


def _finish(data: dict, a: Mapping, cfg: Mapping, metrics: list[str], percentiles) -> dict:
    """Client key order, client-side fields, only the selected metrics, and the servesim block."""
    head = {
        "date": None,
        "endpoint_type": BACKEND,
        "backend": BACKEND,
        "label": a["label"],  # the client stores --label as given (None by default)
        "model_id": a["model"] or data.get("model_id"),
        "tokenizer_id": a["model"] or data.get("tokenizer_id"),
        "num_prompts": int(a["num_prompts"]),
    }
    for item in a["metadata"] or ():  # vLLM --metadata KEY=VALUE, strings as the client stores them
        key, sep, value = str(item).partition("=")
        if not sep:
            raise SpecError("bench", "metadata", item, "KEY=VALUE")
        head[key.strip()] = value.strip()
    rate = float(a["request_rate"])
    head["request_rate"] = "inf" if math.isinf(rate) else rate
    head["burstiness"] = float(a["burstiness"])
    head["max_concurrency"] = a["max_concurrency"]
    out = dict(head)
    for key in CLIENT_KEYS:
        if key not in out:
            out[key] = data.get(key)
    out["rtfx"] = 0.0  # audio only
    if not parse_goodput(a["goodput"]):
        out["request_goodput"] = None
    for key in ("input_lens", "output_lens", "ttfts", "itls", "generated_texts", "errors"):
        if key in data:
            out[key] = data[key]
    for m in metrics:
        for s in ("mean", "median", "std"):
            out[f"{s}_{m}_ms"] = data.get(f"{s}_{m}_ms")
        for p in percentiles:
            word = str(int(p)) if int(p) == p else str(p)
            out[f"p{word}_{m}_ms"] = data.get(f"p{word}_{m}_ms")
    out[BACKEND] = _provenance(cfg, a)
    return out


def _provenance(cfg: Mapping, a: Mapping) -> dict[str, Any]:
    pools = cfg.get("deployment", {}).get("pools", [])
    return {
        "simulated": True,
        "model": cfg.get("model"),
        "dtype": cfg.get("dtype"),
        "pools": copy.deepcopy(pools),
        "config": None
        if a["config"] is None or isinstance(a["config"], Mapping)
        else str(a["config"]),
        "seed": cfg.get("seed"),
        "ignore_eos": bool(a["ignore_eos"]),
    }


def result_path(a: Mapping[str, Any], model: Any = None) -> Path:
    """--result-dir/--result-filename, else vLLM's pattern without its timestamp; ``model`` names
    the config's model when --model was not given."""
    name = a.get("result_filename")
    if not name:
        label = a.get("label") or BACKEND
        rate = float(a.get("request_rate", math.inf))
        conc = a.get("max_concurrency")
        model = str(a.get("model") or model or "model").split("/")[-1]
        conc_s = f"-concurrency{conc}" if conc is not None else ""
        name = f"{label}-{rate}qps{conc_s}-{model}.json"
    # the file stays inside --result-dir: `--result-filename ../x.json` is an error
    return contained(a.get("result_dir") or ".", name, "bench", "result_filename")


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    write_atomic(path, json.dumps(data))


def format_summary(
    result: Mapping[str, Any],
    percentile_metrics: Any = "ttft,tpot,itl",
    metric_percentiles: Any = "99",
) -> str:
    """The client's printed result block (same labels, widths and order)."""
    lines = []
    rate = result.get("request_rate")
    b = result.get("burstiness", 1.0)
    lines.append(f"Traffic request rate: {rate}")
    lines.append(
        f"Burstiness factor: {b} ({'Poisson process' if b == 1.0 else 'Gamma distribution'})"
    )
    lines.append(f"Maximum request concurrency: {result.get('max_concurrency')}")
    lines.append("{s:{c}^{n}}".format(s=" Serving Benchmark Result ", n=50, c="="))

    def row(label: str, value: Any, fmt: str = "") -> None:
        shown = "None" if value is None else format(value, fmt)
        lines.append(f"{label:<40} {shown:<10}")

    row("Successful requests:", result.get("completed"))
    row("Failed requests:", result.get("failed"))
    if result.get("max_concurrency") is not None:
        row("Maximum request concurrency:", result.get("max_concurrency"))
    if rate not in ("inf", None):
        row("Request rate configured (RPS):", rate, ".2f")
    row("Benchmark duration (s):", result.get("duration"), ".2f")
    row("Total input tokens:", result.get("total_input_tokens"))
    row("Total generated tokens:", result.get("total_output_tokens"))
    row("Request throughput (req/s):", result.get("request_throughput"), ".2f")
    if result.get("request_goodput") is not None:
        row("Request goodput (req/s):", result.get("request_goodput"), ".2f")
    row("Output token throughput (tok/s):", result.get("output_throughput"), ".2f")
    row("Peak output token throughput (tok/s):", result.get("max_output_tokens_per_s"), ".2f")
    row("Peak concurrent requests:", result.get("max_concurrent_requests"), ".2f")
    row("Total token throughput (tok/s):", result.get("total_token_throughput"), ".2f")
    for m in _parse_list(percentile_metrics, "percentile_metrics", PERCENTILE_METRICS):
        name, header = METRIC_HEADERS[m]
        lines.append("{s:{c}^{n}}".format(s=header, n=50, c="-"))
        row(f"Mean {name} (ms):", result.get(f"mean_{m}_ms"), ".2f")
        row(f"Median {name} (ms):", result.get(f"median_{m}_ms"), ".2f")
        for p in parse_percentiles(metric_percentiles):
            word = str(int(p)) if int(p) == p else str(p)
            row(f"P{word} {name} (ms):", result.get(f"p{word}_{m}_ms"), ".2f")
    lines.append("=" * 50)
    return "\n".join(lines)


# --------------------------------------------------------------------------- matrices

MAX_MATRIX_POINTS = 100_000  # runs of one matrix (tp x isl/osl x conc), counted before listing
MATRIX_KEYS = ("prefix", "result_dir", "tp", "isl_osl", "isl", "osl", "conc", "prompts_per_conc")
_MATRIX_PASS = tuple(k for k in BENCH_DEFAULTS if k not in ("tp", "max_concurrency", "num_prompts",
                     "random_input_len", "random_output_len", "result_dir", "result_filename",
                     "save_result", "request_rate", "burstiness"))  # fmt: skip


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
