"""`servesim bench`'s arguments: the real client's flags and defaults (BENCH_DEFAULTS), their
checks, and the run config they build (``bench_config``: the deployment and the workload).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from servesim.specs.common import SpecError, load_yaml, require_mapping
from servesim.studies.bench_flags import DATASET_REASONS, DATASETS, NO_EFFECT
from servesim.studies.bench_requests import (
    HASH_BLOCK,
    prefix_hashes,
    random_lengths,
    request_table,
    write_trace,
)
from servesim.workload.datasets import FILE_DATASETS, dataset_lengths

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
