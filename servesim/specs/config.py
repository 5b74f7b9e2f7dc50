"""The run config: deployment (pools, parallelism, schedulers, links), workload, SLO, cost, seed.

`load_config` validates structure, values and names (model and hardware resolve through their
loaders, parallelism is checked against the model). Whether the model *fits* a pool's devices is
checked when the engine builds the cluster (servesim.sim.cluster), because that needs the cost
model's memory accounting and specs/ imports nothing else of servesim.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from servesim.specs.common import (
    SpecError,
    check_keys,
    get_bool,
    get_choice,
    get_number,
    get_str,
    load_yaml,
    parse_yaml,
    require_mapping,
)
from servesim.specs.config_types import (  # the types and registries, re-exported here
    ADMISSIONS,
    DEFAULT_MAX_NUM_BATCHED_TOKENS,
    LAYOUTS,
    MOE_DISTRIBUTIONS,
    PCT_NAMES,
    POLICIES,
    QUEUE_ORDERS,
    ROLES,
    ROUTERS,
    STEP_LOG_MODES,
    DeploymentSpec,
    LinkSpec,
    MoELoadSpec,
    Parallelism,
    PoolSpec,
    RunConfig,
    SchedulerSpec,
    SimOptions,
    SLOSpec,
)
from servesim.specs.dtypes import parse_dtypes
from servesim.specs.engines import (
    ENGINE_PROFILES,  # re-exported: config keys use it
    split_engine,
)
from servesim.specs.limits import (
    DEFAULT_MAX_DURATION_S,
    DEFAULT_MAX_REQUESTS,
    MAX_BATCH,
    MAX_PARALLEL,
    check_limits,
)

DEFAULT_CONFIG: dict[str, Any] = {
    "model": "llama-3.1-8b",
    "dtype": "bf16",
    "deployment": {
        "pools": [
            {
                "role": "colocated",
                "hardware": "h100-sxm",
                "instances": 1,
                "parallelism": {"tp": 1, "pp": 1, "ep": 1},
                "scheduler": {
                    "policy": "sarathi",
                    "max_num_seqs": 256,
                    "max_num_batched_tokens": DEFAULT_MAX_NUM_BATCHED_TOKENS,
                },
            }
        ],
        "router": "least_loaded",
    },
    "workload": {"trace": {"format": "azure", "path": "traces/azure_conv_sample.csv"}},
    "slo": {"ttft_ms": {"p90": 500}, "tpot_ms": {"p99": 50}},
    "seed": 0,
}

_TOP_KEYS = ("model", "dtype", "deployment", "workload", "slo", "cost", "seed", "sim")
_POOL_KEYS = (
    "role",
    "hardware",
    "instances",
    "parallelism",
    "scheduler",
    "overhead_s",
    "micro_batches",
    "engine",  # alias of scheduler.engine (engine[@version])
    "speculative",
)
_SCHED_KEYS = tuple(f.name for f in fields(SchedulerSpec))
RNG_STREAMS = ("arrivals", "lengths", "router", "moe")


def rng_streams(seed: int) -> dict[str, np.random.Generator]:
    """One independent Generator per subsystem, from SeedSequence children (order is fixed)."""
    children = np.random.SeedSequence(int(seed)).spawn(len(RNG_STREAMS))
    return {name: np.random.default_rng(c) for name, c in zip(RNG_STREAMS, children)}


# ---------------------------------------------------------------------------------------------
# loading


def load_config(
    path_or_mapping: str | Path | Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> RunConfig:
    """A run config from a YAML/JSON file or a mapping (None = DEFAULT_CONFIG), with dotted overrides.

    Overrides address keys by dotted path with list indices (`deployment.pools.0.instances`);
    string values are read as YAML scalars (`"4"` -> 4). Unknown keys anywhere are errors.
    """
    if path_or_mapping is None:
        data, where = copy.deepcopy(DEFAULT_CONFIG), "<default>"
    elif isinstance(path_or_mapping, Mapping):
        data, where = copy.deepcopy(dict(path_or_mapping)), "<config>"
    else:
        where = str(path_or_mapping)
        data = load_yaml(path_or_mapping, where)
        if data is None:
            raise SpecError(where, "", "<empty>", "the config file is empty")
    data = require_mapping(data, where, "")
    for key, value in (overrides or {}).items():
        data = apply_override(data, key, value, where)
    return parse_config(data, where)


def apply_override(data: dict[str, Any], key: str, value: Any, where: str) -> dict[str, Any]:
    """Set one dotted key (list items by index) in a copy of ``data``."""
    data = copy.deepcopy(data)
    if isinstance(value, str):
        with contextlib.suppress(yaml.YAMLError):
            value = parse_yaml(value)
    parts = key.split(".")
    node: Any = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        here = ".".join(parts[: i + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise SpecError(where, here, part, f"list index out of range (0..{len(node) - 1})")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                if node.get(part) is None:
                    node[part] = {}
                elif part == "hardware" and isinstance(node[part], str):
                    node[part] = {"base": node[part]}  # a key inside a device derives from it
                node = node[part]
        else:
            raise SpecError(
                where, here, node, "cannot set a key inside a value that is not a mapping or list"
            )
    return data


def _model_dtype(dtype: Any, model_ref: str) -> Any:
    """A quantized HF checkpoint's formats (specs/hf.py) unless the config names its own
    mapping: a plain dtype string (the default bf16 included) cannot describe AWQ/GPTQ/FP8 files."""
    from servesim.specs.hf import model_quantization

    quant = None if isinstance(dtype, Mapping) else model_quantization(model_ref)
    return quant or dtype


def parse_config(data: Mapping[str, Any], where: str) -> RunConfig:
    from servesim.specs.cost import check_prices, parse_cost
    from servesim.specs.model import load_model
    from servesim.specs.rules import validate_queue_slo
    from servesim.specs.workload import parse_workload

    check_keys(data, _TOP_KEYS, where, "")
    model_ref = _resolve_path(get_str(data, "model", where, ""), where)
    model = load_model(model_ref, where)
    dtypes = parse_dtypes(_model_dtype(data.get("dtype", "bf16"), model_ref), where, "dtype")
    deployment = parse_deployment(data.get("deployment"), model, where)
    if "workload" not in data:
        raise SpecError(where, "workload", "<missing>", "required")
    workload = parse_workload(data["workload"], where)
    slo = parse_slo(_absent_empty(data.get("slo")), where)
    cost = parse_cost(data.get("cost"), where)
    # a provider that does not price a pool's device fails here, not after the simulation
    check_prices(cost, [p.hardware.name for p in deployment.pools], where)
    seed = get_number(data, "seed", where, "", default=0, minimum=0, integer=True)
    sim = parse_sim(_absent_empty(data.get("sim")), where)
    cfg = RunConfig(model, dtypes, deployment, workload, slo, cost, seed, where, sim, model_ref)
    check_limits(cfg)
    validate_queue_slo(cfg)
    return cfg


def _absent_empty(value: Any) -> Any:
    """None (absent or ``key:``) is an empty block; anything else is checked as given, so
    ``slo: false`` or ``sim: []`` is an error, not silently nothing."""
    return {} if value is None else value


def _resolve_path(ref: str, where: str) -> str:
    """A relative file path in a config file is relative to that file; names pass through."""
    if where.startswith("<") or not any(ref.endswith(s) for s in (".json", ".yaml", ".yml")):
        return ref
    p = Path(ref)
    if p.is_absolute() or p.exists():
        return ref
    candidate = Path(where).parent / p
    return str(candidate) if candidate.exists() else ref


def parse_deployment(data: Any, model: Any, where: str) -> DeploymentSpec:
    from servesim.specs.hardware import load_hardware
    from servesim.specs.rules import validate_af_pools

    data = require_mapping(data, where, "deployment")
    check_keys(data, ("pools", "router", "kv_link", "af_link", "moe_load"), where, "deployment")
    raw_pools = data.get("pools")
    if not isinstance(raw_pools, list) or not raw_pools:
        raise SpecError(where, "deployment.pools", raw_pools, "a non-empty list of pools")
    moe_load = _parse_moe_load(_absent_empty(data.get("moe_load")), where, "deployment.moe_load")
    extra = moe_load.redundant_experts if model.num_experts else 0  # EP may divide experts + these
    pools = tuple(
        _parse_pool(p, i, model, where, load_hardware, extra) for i, p in enumerate(raw_pools)
    )
    roles = [p.role for p in pools]
    if len(set(roles)) != len(roles) or frozenset(roles) not in LAYOUTS:
        allowed = "; ".join(" + ".join(sorted(x)) for x in LAYOUTS)
        raise SpecError(
            where, "deployment.pools", ", ".join(roles), f"pool roles must be one of: {allowed}"
        )
    router = get_choice(data, "router", ROUTERS, where, "deployment", default="least_loaded")
    kv_link = _parse_link(data.get("kv_link"), where, "deployment.kv_link")
    af_link = _parse_link(data.get("af_link"), where, "deployment.af_link")
    _check_role_keys(pools, kv_link, af_link, where)
    validate_af_pools(model, pools, where)
    if data.get("moe_load") is not None and not model.num_experts:
        raise SpecError(where, "deployment.moe_load", "set",
                        f"only a MoE model takes moe_load; {model.name} is dense")  # fmt: skip
    return DeploymentSpec(pools, router, kv_link, af_link, moe_load)


def _check_role_keys(pools: tuple, kv_link: Any, af_link: Any, where: str) -> None:
    """Keys that only one layout uses are errors elsewhere, not silently ignored."""
    roles = {p.role for p in pools}
    for i, p in enumerate(pools):
        if p.micro_batches > 1 and p.role != "attention":
            raise SpecError(
                where,
                f"deployment.pools.{i}.micro_batches",
                p.micro_batches,
                "only an attention pool (attention/FFN disaggregation) takes micro_batches",
            )
    if kv_link is not None and "prefill" not in roles:
        raise SpecError(
            where,
            "deployment.kv_link",
            "set",
            "needs a prefill pool (prefill/decode disaggregation)",
        )
    if af_link is not None and "attention" not in roles:
        raise SpecError(
            where, "deployment.af_link", "set", "needs attention + ffn pools (attention/FFN split)"
        )


def _parse_moe_load(data: Any, where: str, field: str) -> MoELoadSpec:
    data = require_mapping(data, where, field)
    check_keys(data, ("distribution", "zipf_s", "factor", "redundant_experts"), where, field)
    dist = get_choice(data, "distribution", MOE_DISTRIBUTIONS, where, field, default="uniform")
    s = get_number(data, "zipf_s", where, field, default=1.0, minimum=0)
    factor = get_number(data, "factor", where, field, default=None, minimum=1, allow_none=True)
    if dist == "fixed" and factor is None:
        raise SpecError(where, f"{field}.factor", None, "required with distribution: fixed (>= 1)")
    redundant = get_number(
        data, "redundant_experts", where, field, default=0, minimum=0, integer=True
    )
    return MoELoadSpec(dist, s, factor, redundant)


def _parse_pool(
    data: Any, i: int, model: Any, where: str, load_hardware: Any, redundant: int = 0
) -> PoolSpec:
    field = f"deployment.pools.{i}"
    data = require_mapping(data, where, field)
    check_keys(data, _POOL_KEYS, where, field)
    role = get_choice(data, "role", ROLES, where, field, default="colocated")
    if isinstance(data.get("hardware"), Mapping):  # a derived device: {base: h100-sxm, ...}
        hardware = load_hardware(data["hardware"], f"{where}: {field}.hardware")
    else:
        hw_ref = get_str(data, "hardware", where, field)
        hardware = load_hardware(_resolve_path(hw_ref, where), where)
    instances = get_number(data, "instances", where, field, default=1, minimum=1, integer=True)
    par = parse_parallelism(
        data.get("parallelism") or {}, model, where, f"{field}.parallelism", redundant
    )
    sched_data = dict(require_mapping(data.get("scheduler") or {}, where, f"{field}.scheduler"))
    if data.get("engine") is not None:
        if sched_data.get("engine") not in (None, data["engine"]):
            raise SpecError(
                where, f"{field}.engine", data["engine"], "differs from scheduler.engine; set one"
            )
        sched_data["engine"] = data["engine"]
    sched = parse_scheduler(sched_data, where, f"{field}.scheduler", hardware)
    overhead = get_number(
        data, "overhead_s", where, field, default=None, minimum=0, maximum=1.0, allow_none=True
    )
    if overhead is None and sched.engine is not None:
        overhead = ENGINE_PROFILES[split_engine(sched.engine, where, field)[0]]["overhead_s"]
    if overhead is None:
        overhead = hardware.overhead_s
    micro = get_number(data, "micro_batches", where, field, default=1, minimum=1, integer=True)
    from servesim.specs.speculative import parse_speculative

    spec = parse_speculative(data.get("speculative"), model, where, f"{field}.speculative")
    if spec is not None and role not in ("colocated", "decode"):
        raise SpecError(where, f"{field}.speculative", role,
                        "speculation runs where requests decode: a colocated or decode pool")  # fmt: skip
    hardware = hardware.for_engine(sched.engine)  # the engine's fitted kernel efficiencies
    return PoolSpec(role, hardware, instances, par, sched, overhead, micro, spec)


def parse_parallelism(
    data: Any, model: Any, where: str, field: str, redundant: int = 0
) -> Parallelism:
    from servesim.specs.rules import validate_parallelism

    data = require_mapping(data, where, field)
    check_keys(data, ("tp", "pp", "ep", "dp_attn"), where, field)
    tp, pp, ep, dp = (
        # the bound keeps devices (tp x pp x dp_attn) and every product of them finite ints
        get_number(data, k, where, field, default=1, minimum=1, maximum=MAX_PARALLEL, integer=True)
        for k in ("tp", "pp", "ep", "dp_attn")
    )
    par = Parallelism(tp, pp, ep, dp)
    validate_parallelism(model, par, where, field, redundant)
    return par


def _gpu_class(engine: str, hardware: Any) -> str:
    """Which memory-dependent defaults an engine picks on this device: small_gpu | large_gpu | ''."""
    if hardware is None:
        return ""
    gib = hardware.memory_GB * 1e9 / 2**30
    if engine == "vllm":  # vLLM: < 70 GiB, or any A100, gets the smaller batch defaults
        return "small_gpu" if gib < 70 or "a100" in hardware.name.lower() else ""
    if engine == "sglang":
        return "small_gpu" if gib < 35 else "large_gpu" if gib >= 160 else ""
    return ""


def parse_scheduler(data: Any, where: str, field: str, hardware: Any = None) -> SchedulerSpec:
    data = require_mapping(data, where, field)
    check_keys(data, _SCHED_KEYS, where, field)
    engine = None
    if data.get("engine") is not None:
        name, _ = split_engine(data["engine"], where, f"{field}.engine")
        engine = str(data["engine"]).strip()
    base = {f.name: f.default for f in fields(SchedulerSpec)}
    if engine:
        profile = ENGINE_PROFILES[name]
        base.update(profile["scheduler"])
        base.update(profile.get(_gpu_class(name, hardware), {}))
    merged = {**base, **{k: v for k, v in data.items() if k != "engine"}}
    policy = get_choice(merged, "policy", POLICIES, where, field)
    seqs = get_number(
        merged, "max_num_seqs", where, field, minimum=1, maximum=MAX_BATCH, integer=True,
        allow_none=True,
    )  # fmt: skip
    tokens = get_number(merged, "max_num_batched_tokens", where, field, minimum=1,
                        maximum=MAX_BATCH, integer=True)  # fmt: skip
    if seqs is not None and tokens < seqs and policy != "static":
        raise SpecError(
            where,
            f"{field}.max_num_batched_tokens",
            tokens,
            f"must be >= max_num_seqs ({seqs}): every running decode needs one token of the budget",
        )
    return SchedulerSpec(
        policy=policy,
        max_num_seqs=seqs,
        max_num_batched_tokens=tokens,
        block_size=get_number(
            merged, "block_size", where, field, minimum=1, maximum=4096, integer=True
        ),
        gpu_memory_utilization=get_number(
            merged, "gpu_memory_utilization", where, field, minimum=0, exclusive_min=True, maximum=1
        ),
        enable_prefix_caching=get_bool(merged, "enable_prefix_caching", where, field),
        engine=engine,
        reserve_output=get_bool(merged, "reserve_output", where, field),
        queue=get_choice(merged, "queue", QUEUE_ORDERS, where, field),
        admission=get_choice(merged, "admission", ADMISSIONS, where, field),
    )


def _parse_link(data: Any, where: str, field: str) -> LinkSpec | None:
    if data is None:
        return None
    data = require_mapping(data, where, field)
    check_keys(data, ("bandwidth_GBps", "latency_us", "streaming"), where, field)
    return LinkSpec(
        get_number(data, "bandwidth_GBps", where, field, minimum=0, exclusive_min=True),
        get_number(data, "latency_us", where, field, default=0.0, minimum=0),
        get_bool(data, "streaming", where, field, default=False),
    )


def parse_slo(data: Any, where: str) -> SLOSpec:
    data = require_mapping(data, where, "slo")
    check_keys(data, ("ttft_ms", "tpot_ms", "e2el_ms"), where, "slo")
    out = {}
    for key in ("ttft_ms", "tpot_ms", "e2el_ms"):
        block = _absent_empty(data.get(key))
        if isinstance(block, (int, float)) and not isinstance(block, bool):
            block = {"p90": block}  # `ttft_ms: 500` means p90
        block = require_mapping(block, where, f"slo.{key}")
        check_keys(block, PCT_NAMES, where, f"slo.{key}")
        out[key] = tuple(
            (p, get_number(block, p, where, f"slo.{key}", minimum=0, exclusive_min=True))
            for p in PCT_NAMES
            if p in block
        )
    return SLOSpec(**out)


def parse_sim(data: Any, where: str) -> SimOptions:
    data = require_mapping(data, where, "sim")
    check_keys(data, [f.name for f in fields(SimOptions)], where, "sim")
    return SimOptions(
        get_bool(data, "fast_forward", where, "sim", default=True),
        get_choice(data, "step_log", STEP_LOG_MODES, where, "sim", default="full"),
        get_number(data, "max_requests", where, "sim", default=DEFAULT_MAX_REQUESTS, minimum=1,
                   integer=True),
        get_number(data, "max_duration_s", where, "sim", default=DEFAULT_MAX_DURATION_S,
                   minimum=0, exclusive_min=True),
        get_bool(data, "strict", where, "sim", default=False),
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# dumping


def config_to_dict(cfg: RunConfig) -> dict[str, Any]:
    """The fully resolved config as plain data; load_config(config_to_dict(c)) == c."""
    d = cfg.dtypes
    pools = []
    for p in cfg.deployment.pools:
        s = p.scheduler
        sched = {f.name: getattr(s, f.name) for f in fields(SchedulerSpec)}
        if s.engine is None:
            sched.pop("engine")
        pools.append(
            {
                "role": p.role,
                "hardware": _hardware_ref(p.hardware),
                "instances": p.instances,
                "parallelism": _plain(p.parallelism),
                "scheduler": sched,
                "overhead_s": p.overhead_s,
                "micro_batches": p.micro_batches,
            }
        )
        if p.speculative is not None:
            pools[-1]["speculative"] = p.speculative.to_dict()
    dep: dict[str, Any] = {"pools": pools, "router": cfg.deployment.router}
    for key in ("kv_link", "af_link"):
        link = getattr(cfg.deployment, key)
        if link is not None:
            dep[key] = _plain(link)
    if cfg.deployment.moe_load != MoELoadSpec():
        dep["moe_load"] = _plain(cfg.deployment.moe_load)
    out = {
        "model": cfg.model_ref or cfg.model.name,
        "dtype": {"weights": d.weights, "activations": d.activations, "kv_cache": d.kv_cache},
        "deployment": dep,
        "workload": _spec_dict(cfg.workload, "servesim.specs.workload", "workload_to_dict"),
        "slo": {
            k: dict(getattr(cfg.slo, k))
            for k in ("ttft_ms", "tpot_ms", "e2el_ms")
            if getattr(cfg.slo, k)
        },
        "seed": cfg.seed,
        "sim": _plain(cfg.sim),
    }
    if cfg.cost is not None:
        out["cost"] = _spec_dict(cfg.cost, "servesim.specs.cost", "cost_to_dict")
    return out


def _hardware_ref(hw: Any) -> Any:
    """A catalog device by name; a derived one as its mapping (base + overrides)."""
    if not getattr(hw, "base", ""):
        return hw.name
    over = json.loads(hw.overrides or "{}")
    return over if hw.base == "(none)" else {"base": hw.base, **over}


def _spec_dict(spec: Any, module: str, func: str) -> Any:
    """Prefer the owning module's own dumper; else a generic dataclass -> dict (None dropped)."""
    import importlib

    dumper = getattr(importlib.import_module(module), func, None)
    return dumper(spec) if dumper is not None else _plain(spec)


def _plain(obj: Any) -> Any:
    if is_dataclass(obj):
        return {
            f.name: _plain(getattr(obj, f.name))
            for f in fields(obj)
            if getattr(obj, f.name) is not None
        }
    if (
        isinstance(obj, tuple)
        and obj
        and all(isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], str) for x in obj)
    ):
        return {k: _plain(v) for k, v in obj}
    if isinstance(obj, (tuple, list)):
        return [_plain(x) for x in obj]
    return obj
