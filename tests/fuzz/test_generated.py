"""Generated hostile inputs (hypothesis, derandomised so CI is reproducible): mutated run
configs, traces, HF config.json files and command lines, each checked against the contract of
tests/fuzz/_harness.py. A failure found here becomes a case in tests/fuzz/_corpus.py.

The base config caps the run (sim.max_requests 200, sim.max_duration_s 3600), so a mutation
that asks for a large run is an error naming the cap rather than minutes of simulation; the
caps themselves are never mutated.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import yaml
from _corpus import BASE, _hf_config
from _harness import run_case
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# CI runs 60 derandomised examples per test; SERVESIM_FUZZ_EXAMPLES=N runs N random ones (a
# longer local hunt: `SERVESIM_FUZZ_EXAMPLES=1000 pytest tests/fuzz/test_generated.py`).
_LONG = os.environ.get("SERVESIM_FUZZ_EXAMPLES")
SETTINGS = settings(
    max_examples=int(_LONG) if _LONG else 60,
    deadline=None,
    derandomize=not _LONG,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

HOSTILE_SCALARS = st.sampled_from(
    [0, -1, 1, 2, 1e30, -1e30, 5e-324, 2**63, 2**64, 1e9, 0.5, float("nan"), float("inf"),
     "", "x", "1e9", "../x", "nan", True, False, None, "h100-sxm", "llama-3.1-8b"]
)  # fmt: skip
# Plausible values keep a share of the mutated runs valid, so the conservation checks of exit-0
# runs are exercised too, not only the error path.
PLAUSIBLE = st.one_of(
    st.integers(1, 64),
    st.floats(0.05, 200.0),
    st.sampled_from(["sarathi", "vllm", "orca", "prefill_first", "static", "fp8", "bf16",
                     "poisson", "constant", "fixed", "uniform", "runs", "full", "least_loaded",
                     "round_robin", "random", "colocated"]),
)  # fmt: skip
VALUES = st.one_of(
    PLAUSIBLE,
    PLAUSIBLE,
    HOSTILE_SCALARS,
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.lists(HOSTILE_SCALARS, max_size=3),
    st.dictionaries(st.sampled_from(["p90", "x", "rate", "mean"]), HOSTILE_SCALARS, max_size=2),
)
CONFIG_PATHS = st.sampled_from(
    [
        "model", "dtype", "seed", "slo", "slo.ttft_ms", "slo.ttft_ms.p90", "slo.tpot_ms.p99",
        "deployment", "deployment.router", "deployment.pools", "deployment.pools.0",
        "deployment.pools.0.role", "deployment.pools.0.hardware", "deployment.pools.0.instances",
        "deployment.pools.0.parallelism", "deployment.pools.0.parallelism.tp",
        "deployment.pools.0.parallelism.pp", "deployment.pools.0.scheduler",
        "deployment.pools.0.scheduler.policy", "deployment.pools.0.scheduler.max_num_seqs",
        "deployment.pools.0.scheduler.max_num_batched_tokens",
        "deployment.pools.0.scheduler.block_size",
        "deployment.pools.0.scheduler.gpu_memory_utilization", "deployment.pools.0.overhead_s",
        "deployment.moe_load", "deployment.kv_link", "workload", "workload.arrivals",
        "workload.arrivals.rate", "workload.arrivals.process", "workload.arrivals.cv",
        "workload.num_requests", "workload.duration_s", "workload.max_concurrency",
        "workload.lengths", "workload.lengths.input.mean", "workload.lengths.output.mean",
        "workload.lengths.input.dist", "workload.lengths.output.max", "workload.prefix",
        "workload.prefix.shared_tokens", "workload.prefix.groups", "workload.sessions",
        "workload.clients", "sim", "sim.strict", "sim.step_log", "sim.fast_forward", "cost",
        "unknown_key",
    ]
)  # fmt: skip
CAPS = {"max_requests": 200, "max_duration_s": 3600}


def _set(data: dict, path: str, value) -> dict:
    node = data
    parts = path.split(".")
    for part in parts[:-1]:
        if isinstance(node, list):
            node = node[int(part)] if part.isdigit() and int(part) < len(node) else None
        elif isinstance(node, dict):
            node = (
                node.setdefault(part, {}) if isinstance(node.get(part, {}), (dict, list)) else None
            )
        if node is None:
            return data
    if isinstance(node, dict):
        node[parts[-1]] = value
    return data


def _config(mutations) -> str:
    data = yaml.safe_load(BASE)
    for path, value in mutations:
        data = _set(data, path, value)
    sim = data.get("sim")
    if isinstance(sim, dict):
        sim.update(CAPS)
    elif "sim" not in data:
        data["sim"] = dict(CAPS)
    return yaml.safe_dump(data)


@SETTINGS
@given(st.lists(st.tuples(CONFIG_PATHS, VALUES), min_size=0, max_size=2))
def test_mutated_configs_keep_the_contract(mutations):
    with tempfile.TemporaryDirectory() as tmp:
        run_case(Path(tmp) / "a" / "b", {"c.yaml": _config(mutations)},
                 ["run", "c.yaml", "--out", "{out}", "-q"], "either")  # fmt: skip


CELLS = st.one_of(
    st.integers(-5, 2**64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "inf", "-inf", "nan", "1e30", "abc", "1.5", "2 3", "-0", "1;2"]),
    st.integers(0, 500),
)
JSON_CELLS = st.one_of(
    CELLS, st.none(), st.booleans(), st.lists(st.one_of(st.integers(-3, 2**64), st.text(max_size=2),
                                                       st.none()), max_size=3))  # fmt: skip


def _csv_cell(v) -> str:
    if isinstance(v, list):  # prefix ids: space-separated in a CSV cell
        return " ".join(str(x) for x in v).replace(",", " ")
    return "" if v is None else str(v).replace(",", " ")


@SETTINGS
@given(
    st.sampled_from(["csv", "jsonl", "mooncake"]),
    st.one_of(
        st.lists(st.tuples(JSON_CELLS, JSON_CELLS, JSON_CELLS, JSON_CELLS), min_size=1, max_size=5),
        st.lists(  # well-formed rows (in any order), so valid traces are simulated and checked
            st.tuples(
                st.integers(0, 100),
                st.integers(0, 3000),
                st.integers(0, 64),
                st.lists(st.integers(0, 2**63 - 1), max_size=3),
            ),
            min_size=1,
            max_size=8,
        ),  # fmt: skip
    ),
    st.booleans(),
)
def test_mutated_traces_keep_the_contract(fmt, rows, simulate):
    if fmt == "csv":
        head = "arrival,prompt_tokens,output_tokens,prefix_hashes"
        name, text = "t.csv", "\n".join([head, *(",".join(map(_csv_cell, r)) for r in rows)]) + "\n"
    else:
        keys = (("arrival", "prompt_tokens", "output_tokens", "prefix_hashes") if fmt == "jsonl"
                else ("timestamp", "input_length", "output_length", "hash_ids"))  # fmt: skip
        lines = [json.dumps(dict(zip(keys, r))) for r in rows]  # NaN/Infinity as JSON allows
        name, text = "t.jsonl", "\n".join(lines) + "\n"
    if simulate:
        cfg = (
            "model: llama-3.1-8b\ndeployment: {pools: [{role: colocated, hardware: h100-sxm}]}\n"
            f"workload: {{trace: {{path: {name}, format: {fmt}}}}}\nsim: {json.dumps(CAPS)}\n"
        )
        files, argv = {name: text, "c.yaml": cfg}, ["run", "c.yaml", "--out", "{out}", "-q"]
    else:
        files, argv = {name: text}, ["trace", "stats", name, "--format", fmt]
    with tempfile.TemporaryDirectory() as tmp:
        run_case(Path(tmp) / "a" / "b", files, argv, "either")


HF_KEYS = st.sampled_from(
    ["hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads",
     "num_hidden_layers", "vocab_size", "max_position_embeddings", "torch_dtype", "head_dim",
     "num_local_experts", "num_experts_per_tok", "architectures", "model_type", "tie_word_embeddings"]
)  # fmt: skip


@SETTINGS
@given(st.dictionaries(HF_KEYS, VALUES, min_size=1, max_size=3))
def test_mutated_hf_configs_keep_the_contract(changes):
    text = _hf_config(**changes)
    with tempfile.TemporaryDirectory() as tmp:
        run_case(Path(tmp) / "a" / "b", {"m/config.json": text},
                 ["show", "model", "m/config.json"], "either")  # fmt: skip


FLAGS = st.sampled_from(
    ["--tp", "--pp", "--instances", "--scheduler", "--max-num-seqs", "--max-num-batched-tokens",
     "--dtype", "--rate", "--num-requests", "--concurrency", "--seed", "--hw", "--model", "--set",
     "--trace", "--out"]
)  # fmt: skip
ARG_VALUES = st.one_of(
    st.integers(1, 16).map(str),
    st.sampled_from(["0", "-1", "1", "2", "1e9", "nan", "inf", "abc", "", "../x", "1e-320",
                     "512", "fp8", "h100-sxm", "sim.strict=true", "workload.num_requests=1e9",
                     "slo=false", "x=[", "../../escaped", "/dev/null"]),
    st.text(max_size=8),
)  # fmt: skip


@SETTINGS
@given(st.lists(st.tuples(FLAGS, ARG_VALUES), min_size=1, max_size=3))
def test_mutated_command_lines_keep_the_contract(flags):
    argv = ["run", "base.yaml", "-q"]
    for flag, value in flags:
        argv += [flag, value]
    if "--out" not in argv:
        argv += ["--out", "{out}"]
    files = {"base.yaml": BASE + f"sim: {json.dumps(CAPS)}\n"}
    with tempfile.TemporaryDirectory() as tmp:
        run_case(Path(tmp) / "a" / "b", files, argv, "either")


SWEEP_KEYS = st.sampled_from(["name", "base", "grid", "zip", "seeds", "repeat", "metrics", "out",
                              "max_points", "bogus"])  # fmt: skip
SWEEP_VALUES = st.one_of(
    VALUES,
    st.sampled_from(["../../x", "/tmp/x", "a/b", ".", "..", "base.yaml", "all"]),
    st.dictionaries(
        st.sampled_from(["seed", "workload.num_requests", "x.y"]),
        st.lists(HOSTILE_SCALARS, max_size=4),
        max_size=3,
    ),  # fmt: skip
)


@SETTINGS
@given(st.dictionaries(SWEEP_KEYS, SWEEP_VALUES, max_size=5))
def test_mutated_sweep_specs_validate_or_fail_cleanly(changes):
    """Spec validation only (running points spawns processes): a SpecError or a spec whose
    output folder lies inside the spec's folder and whose points respect max_points."""
    from servesim.sweep import DEFAULT_MAX_POINTS, load_sweep_spec

    from servesim.specs.common import SpecError, parse_yaml

    data = {"base": "base.yaml", "grid": {"seed": [1, 2]}, **changes}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "a" / "b"
        folder.mkdir(parents=True)
        (folder / "base.yaml").write_text(BASE)
        spec_file = folder / "s.yaml"
        spec_file.write_text(yaml.safe_dump(data))
        try:
            spec = load_sweep_spec(spec_file)
        except SpecError as exc:
            assert len(str(exc)) < 600
            return
        assert spec.out.resolve().is_relative_to(folder.resolve())
        cap = parse_yaml(spec_file.read_text()).get("max_points", DEFAULT_MAX_POINTS)
        assert len(spec.points) <= cap


HW_PATHS = st.sampled_from(
    ["compute.tflops.bf16", "compute.tflops.fp8", "compute.tflops", "compute.compute_units",
     "memory.capacity_GB", "memory.bandwidth_GBps", "memory", "interconnect.scaleup.devices",
     "interconnect.scaleup.bandwidth_GBps", "interconnect.scaleout.latency_us",
     "interconnect.devices_per_node", "power.tdp_W", "power.idle_W", "price.hour_usd",
     "overhead_s", "efficiency.gemm_compute", "efficiency.gemm_wave", "efficiency.attn_overlap",
     "efficiency.gemm_launch_s", "efficiency.bogus", "efficiency", "vendor", "name", "aliases"]
)  # fmt: skip


@SETTINGS
@given(st.lists(st.tuples(HW_PATHS, VALUES), min_size=0, max_size=2))
def test_mutated_hardware_profiles_keep_the_contract(mutations):
    from _corpus import REPO

    data = yaml.safe_load((REPO / "hw_profiles" / "h100-sxm.yaml").read_text())
    for path, value in mutations:
        data = _set(data, path, value)
    argv = ["roofline", "--model", "llama-3.1-8b", "--hw", "hw.yaml", "--prefill", "512",
            "--decode", "8@1024"]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        run_case(Path(tmp) / "a" / "b", {"hw.yaml": yaml.safe_dump(data)}, argv, "either")
