"""The corpus: every hostile or malformed input reported against servesim, one case each, with
what must happen (``error``: exit 2 and one ``error:`` line; ``ok``: exit 0 with finite,
conserved results). Add a case here for every bug found; the fuzz tests replay them all.

Inputs are built here (some are megabytes or 5,000 levels deep) rather than checked in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent


@dataclass
class Case:
    name: str
    argv: list[str]
    expect: str  # "error" | "ok"
    files: dict[str, str | bytes] = field(default_factory=dict)
    says: str = ""  # a fragment the error line (or stdout) must contain
    xfail: str = ""  # reason, while a known bug is open (none today)


BASE = """\
model: llama-3.1-8b
deployment:
  pools: [{role: colocated, hardware: h100-sxm}]
workload:
  arrivals: {process: poisson, rate: 20}
  lengths: {input: {dist: fixed, mean: 64}, output: {dist: fixed, mean: 8}}
  num_requests: 8
"""
BASE_FILES = {"base.yaml": BASE}


def _run(*extra: str) -> list[str]:
    return ["run", "base.yaml", "--out", "{out}", *extra]


def _lol(levels: int = 9) -> str:
    """YAML "billion laughs": 9 levels of 9 aliases expand to 9^9 values."""
    text = 'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for i in range(1, levels):
        text += f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]\n"
    return text


def _lol_flow(levels: int = 9) -> str:
    parts = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        parts.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    return "{" + ", ".join(parts) + "}"


def _hw(**changes: str) -> str:
    text = (REPO / "hw_profiles" / "h100-sxm.yaml").read_text()
    lines = text.splitlines()
    for key, value in changes.items():
        for i, line in enumerate(lines):
            if line.strip().startswith(f"{key}:"):
                indent = line[: len(line) - len(line.lstrip())]
                lines[i] = f"{indent}{key}: {value}"
                break
        else:
            raise KeyError(key)
    return "\n".join(lines) + "\n"


def _with_efficiency(key: str, value: str) -> str:
    text = (REPO / "hw_profiles" / "h100-sxm.yaml").read_text()
    if "\nefficiency:" in text:
        return text.replace("\nefficiency:", f"\nefficiency:\n  {key}: {value}", 1)
    return text + f"\nefficiency:\n  {key}: {value}\n"


def _hf_config(**changes) -> str:
    cfg = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "num_hidden_layers": 32,
        "vocab_size": 128256,
        "max_position_embeddings": 131072,
        "torch_dtype": "bfloat16",
    }
    cfg.update(changes)
    return json.dumps(cfg)


MOONCAKE_OK = '{"timestamp": 0, "input_length": 100, "output_length": 5, "hash_ids": [1]}\n'


def _mooncake(hash_ids: str) -> str:
    return MOONCAKE_OK + (
        f'{{"timestamp": 10, "input_length": 100, "output_length": 5, "hash_ids": {hash_ids}}}\n'
    )


def _csv(*rows: str, header: str = "arrival,prompt_tokens,output_tokens") -> str:
    return "\n".join([header, *rows]) + "\n"


def _trace_config(path: str) -> str:
    return (
        "model: llama-3.1-8b\ndeployment:\n  pools: [{role: colocated, hardware: h100-sxm}]\n"
        f"workload:\n  trace: {{path: {path}}}\n"
    )


CASES: list[Case] = [
    # ---- tracebacks reported
    Case(
        "yaml_nested_5000",
        ["run", "deep.yaml"],
        "error",
        {"deep.yaml": "model: " + "[" * 5000 + "]" * 5000 + "\n"},
        "nested deeper",
    ),
    Case(
        "config_json_nested_5000",
        ["run", "base.yaml", "--model", "deep/config.json"],
        "error",
        {**BASE_FILES, "deep/config.json": '{"a":' * 5000 + "1" + "}" * 5000},
        "nested deeper",
    ),
    Case(
        "mooncake_hash_ids_strings",
        ["trace", "stats", "t.jsonl"],
        "error",
        {"t.jsonl": _mooncake('["a", "b"]')},
        "line 2",
    ),
    Case(
        "mooncake_hash_ids_nulls",
        ["trace", "stats", "t.jsonl"],
        "error",
        {"t.jsonl": _mooncake("[null, 3]")},
        "line 2",
    ),
    Case(
        "mooncake_hash_ids_lists",
        ["trace", "stats", "t.jsonl"],
        "error",
        {"t.jsonl": _mooncake("[[1, 2], 3]")},
        "line 2",
    ),
    Case(
        "mooncake_hash_ids_in_run",
        ["run", "c.yaml"],
        "error",
        {"t.jsonl": _mooncake('["x"]'), "c.yaml": _trace_config("t.jsonl")},
        "hash_ids",
    ),
    Case(
        "csv_prefix_letters",
        ["trace", "stats", "t.csv"],
        "error",
        {
            "t.csv": _csv(
                "0,10,5,1 2",
                "1,10,5,3 abc",
                header="arrival,prompt_tokens,output_tokens,prefix_hashes",
            )
        },
        "line 3",
    ),
    Case(
        "csv_prefix_floats",
        ["trace", "stats", "t.csv"],
        "error",
        {"t.csv": _csv("0,10,5,1.5", header="arrival,prompt_tokens,output_tokens,prefix_hashes")},
        "line 2",
    ),
    Case(
        "hw_efficiency_zero",
        ["run", "base.yaml", "--hw", "hw.yaml"],
        "error",
        {**BASE_FILES, "hw.yaml": _with_efficiency("gemm_compute", "0")},
        "gemm_compute",
    ),
    Case(
        "hw_capacity_1e30",
        ["run", "base.yaml", "--hw", "hw.yaml"],
        "error",
        {**BASE_FILES, "hw.yaml": _hw(capacity_GB="1e30")},
        "capacity_GB",
    ),
    Case(
        "calibrate_n_head_zero",
        ["calibrate", "m.csv", "--hw", "a100-sxm"],
        "error",
        {
            "m.csv": "device,model,tp,num_tokens,op,n_embd,n_head,n_kv_head,n_expanded_embd,"
            "gated,measured_ms_median\na100,m,1,1,add,8192,0,8,28672,True,0.002\n"
        },
        "n_head",
    ),
    Case(
        "sweep_dask_not_an_address",
        ["sweep", "s.yaml", "--dask", "notanaddress"],
        "error",
        {**BASE_FILES, "s.yaml": "base: base.yaml\ngrid: {seed: [1]}\n"},
        "",
    ),
    # ---- hangs and memory
    Case(
        "billion_laughs_config",
        ["run", "lol.yaml"],
        "error",
        {"lol.yaml": _lol() + "model: *a8\n"},
        "aliases",
    ),
    Case(
        "billion_laughs_in_set",
        ["run", "base.yaml", "--set", "workload.x=" + _lol_flow()],
        "error",
        BASE_FILES,
        "aliases",
    ),
    Case("recursive_alias", ["run", "r.yaml"], "error", {"r.yaml": "a: &a [*a]\n"}, "itself"),
    Case(
        "plan_rate_1e9",
        ["plan", "--model", "llama-3.1-8b", "--rate", "1e9", "--slo-tpot-p99", "50"],
        "ok",
        {},
        "replicas",
    ),
    Case(
        "sweep_repeat_1e9",
        ["sweep", "s.yaml"],
        "error",
        {**BASE_FILES, "s.yaml": "base: base.yaml\nrepeat: 1000000000\n"},
        "max_points",
    ),
    Case(
        "sweep_grid_1e9_points",
        ["sweep", "s.yaml"],
        "error",
        {
            **BASE_FILES,
            "s.yaml": "base: base.yaml\ngrid:\n"
            + "".join(f"  k{i}: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n" for i in range(9)),
        },
        "max_points",
    ),
    Case(
        "prefix_groups_1e9",
        _run("--set", "workload.prefix={shared_tokens: 64, groups: 1e9}"),
        "error",
        BASE_FILES,
        "sim.max_requests",
    ),
    Case(
        "prefix_shared_tokens_1e9",
        _run("--set", "workload.prefix.shared_tokens=1e9"),
        "error",
        BASE_FILES,
        "fixed cap",
    ),
    Case(
        "sessions_1e9",
        _run("--set", "workload.sessions={concurrent: 1e9, turns: 2}"),
        "error",
        BASE_FILES,
        "sim.max_requests",
    ),
    Case(
        "num_requests_1e9",
        _run("--set", "workload.num_requests=1e9"),
        "error",
        BASE_FILES,
        "sim.max_requests",
    ),
    Case(
        "instances_1e9",
        _run("--set", "deployment.pools.0.instances=1e9"),
        "error",
        BASE_FILES,
        "fixed cap",
    ),
    # ---- wrong answers
    Case("rate_subnormal", _run("--rate", "5e-324"), "error", BASE_FILES, "max_duration_s"),
    Case(
        "trace_tokens_inf",
        ["trace", "stats", "t.csv"],
        "error",
        {"t.csv": _csv("0,10,5", "1,inf,5")},
        "line 3",
    ),
    Case(
        "trace_tokens_1e30",
        ["trace", "stats", "t.csv"],
        "error",
        {"t.csv": _csv("0,1e30,5")},
        "2^63",
    ),
    Case(
        "trace_tokens_2_63",
        ["trace", "stats", "t.jsonl"],
        "error",
        {"t.jsonl": '{"timestamp": 0, "input_length": 9223372036854775808, "output_length": 1}\n'},
        "2^63",
    ),
    Case(
        "trace_timestamp_inf",
        ["trace", "stats", "t.csv"],
        "error",
        {"t.csv": _csv("0,10,5", "inf,10,5")},
        "finite",
    ),
    Case(
        "trace_timestamp_huge_in_run",
        ["run", "c.yaml"],
        "error",
        {"t.csv": _csv("0,10,5", "1e300,10,5"), "c.yaml": _trace_config("t.csv")},
        "max_duration_s",
    ),
    Case(
        "trace_unsorted_is_sorted",
        ["trace", "stats", "t.csv"],
        "ok",
        {"t.csv": _csv("5,10,5", "0,10,5", "2,10,5")},
        "sorted",
    ),
    # ---- writes outside the target
    Case(
        "bench_result_filename_escapes",
        [
            "bench",
            "--num-prompts",
            "4",
            "--random-input-len",
            "32",
            "--random-output-len",
            "4",
            "--save-result",
            "--result-dir",
            "{out}",
            "--result-filename",
            "../../escaped.json",
        ],
        "error",
        {},
        "must stay inside",
    ),
    Case(
        "bench_result_filename_absolute",
        [
            "bench",
            "--num-prompts",
            "4",
            "--random-input-len",
            "32",
            "--random-output-len",
            "4",
            "--save-result",
            "--result-dir",
            "{out}",
            "--result-filename",
            "/tmp/escaped.json",
        ],
        "error",
        {},
        "inside",
    ),
    Case(
        "sweep_name_escapes",
        ["sweep", "s.yaml"],
        "error",
        {**BASE_FILES, "s.yaml": "name: ../../escaped\nbase: base.yaml\ngrid: {seed: [1]}\n"},
        "must stay inside",
    ),
    Case(
        "sweep_out_escapes",
        ["sweep", "s.yaml"],
        "error",
        {**BASE_FILES, "s.yaml": "out: ../../escaped\nbase: base.yaml\ngrid: {seed: [1]}\n"},
        "must stay inside",
    ),
    Case(
        "bench_matrix_result_dir_escapes",
        ["bench", "--matrix", "m.yaml"],
        "error",
        {
            "m.yaml": "prefix: p\nresult_dir: ../../escaped\ntp: [1]\nisl_osl: [[32, 4]]\nconc: [1]\n"
        },
        "must stay inside",
    ),
    Case(
        "bench_matrix_prefix_escapes",
        ["bench", "--matrix", "m.yaml"],
        "error",
        {"m.yaml": "prefix: ../../../escaped\ntp: [1]\nisl_osl: [[32, 4]]\nconc: [1]\n"},
        "must stay inside",
    ),
    Case(
        "bench_matrix_1e9_points",
        ["bench", "--matrix", "m.yaml"],
        "error",
        {
            "m.yaml": "prefix: p\ntp: [1]\nisl: ["
            + ", ".join(map(str, range(1, 1001)))
            + "]\nosl: ["
            + ", ".join(map(str, range(1, 1001)))
            + "]\nconc: [1, 2, 3, 4, 5]\n"
        },
        "fixed cap",
    ),
    # ---- silently accepted
    Case("slo_false", _run("--set", "slo=false"), "error", BASE_FILES, "mapping"),
    Case("sim_list", _run("--set", "sim=[1, 2]"), "error", BASE_FILES, "mapping"),
    Case("sim_empty_list", _run("--set", "sim=[]"), "error", BASE_FILES, "mapping"),
    Case("slo_ttft_list", _run("--set", "slo={ttft_ms: []}"), "error", BASE_FILES, "mapping"),
    Case("slo_ttft_zero", _run("--set", "slo={ttft_ms: 0}"), "error", BASE_FILES, "> 0"),
    Case(
        "hw_gemm_wave_5",
        ["run", "base.yaml", "--hw", "hw.yaml"],
        "error",
        {**BASE_FILES, "hw.yaml": _with_efficiency("gemm_wave", "5")},
        "gemm_wave",
    ),
    Case(
        "plan_slo_nan",
        ["plan", "--model", "llama-3.1-8b", "--rate", "2", "--slo-ttft-p90", "nan"],
        "error",
        {},
        "ttft",
    ),
    Case(
        "duplicate_workload_block",
        ["run", "dup.yaml"],
        "error",
        {"dup.yaml": BASE + "workload:\n  clients: {concurrency: 2}\n"},
        "duplicate key",
    ),
    Case(
        "duplicate_json_key",
        ["run", "base.yaml", "--model", "m/config.json"],
        "error",
        {**BASE_FILES, "m/config.json": _hf_config()[:-1] + ', "hidden_size": 8}'},
        "duplicate key",
    ),
    Case(
        "moe_load_on_dense",
        _run("--set", "deployment.moe_load={distribution: zipf}"),
        "error",
        BASE_FILES,
        "dense",
    ),
    Case(
        "prompt_longer_than_context",
        ["run", "c.yaml", "--out", "{out}"],
        "ok",
        {"t.csv": _csv("0,100,5", "0.1,200000,5", "0.2,100,5"), "c.yaml": _trace_config("t.csv")},
        "longer than the context window",
    ),
    Case(
        "prompt_longer_than_context_strict",
        ["run", "c.yaml", "--set", "sim.strict=true"],
        "error",
        {"t.csv": _csv("0,100,5", "0.1,200000,5"), "c.yaml": _trace_config("t.csv")},
        "sim.strict",
    ),
    # ---- found by probing after the first fixes
    Case(
        "dp_attn_1e9",
        _run("--set", "deployment.pools.0.parallelism.dp_attn=1e9"),
        "error",
        BASE_FILES,
        "65536",
    ),
    Case(
        "max_num_seqs_1e12",
        _run("--set", "deployment.pools.0.scheduler.max_num_seqs=1e12"),
        "error",
        BASE_FILES,
        "max_num_seqs",
    ),
    Case(
        "cost_tokens_per_day_inf",
        ["cost", "--hw", "h100-sxm", "--tokens-per-day", "inf"],
        "error",
        {},
        "finite",
    ),
    Case(
        "roofline_overhead_nan",
        ["roofline", "--model", "llama-3.1-8b", "--hw", "h100-sxm", "--overhead-s", "nan"],
        "error",
        {},
        "overhead_s",
    ),
    Case(
        "path_name_too_long", ["show", "hardware", "x" * 100_000], "error", {}, "100,000 characters"
    ),
    Case(
        "gamma_cv_tiny",
        _run("--set", "workload.arrivals={process: gamma, rate: 10, cv: 1e-300}"),
        "error",
        BASE_FILES,
        "cv",
    ),
    Case(
        "gamma_cv_huge",
        _run("--set", "workload.arrivals={process: gamma, rate: 10, cv: 1e300}"),
        "error",
        BASE_FILES,
        "cv",
    ),
    Case(
        "bursty_on_tiny",
        _run("--set", "workload.arrivals={process: bursty, rate: 10, on_s: 1e-300, off_s: 1e300}"),
        "error",
        BASE_FILES,
        "on_s",
    ),
    Case(
        "pool_overhead_huge",
        _run("--set", "deployment.pools.0.overhead_s=1e300"),
        "error",
        BASE_FILES,
        "overhead_s",
    ),
    Case(
        "sweep_name_nul_byte",
        ["sweep", "s.yaml"],
        "error",
        {**BASE_FILES, "s.yaml": 'name: "a\\0b"\nbase: base.yaml\ngrid: {seed: [1]}\n'},
        "inside",
    ),
    Case("out_nul_byte", ["run", "base.yaml", "--out", "a\x00b"], "error", BASE_FILES, "NUL"),
    Case(
        "sweep_meta_wrong_shape",
        ["compare", "sw", "sw"],
        "ok",
        {"sw/results.csv": "point,seed,error,x\np,1,,1.5\n", "sw/sweep.json": '{"inputs": 5}'},
        "",
    ),
    Case(
        "plan_trace_without_duration",
        ["plan", "--model", "llama-3.1-8b", "--trace", "t.csv", "--slo-tpot-p99", "50"],
        "error",
        {"t.csv": _csv("0,10,5", "0,10,5")},
        "spans no time",
    ),
    Case(
        "hw_tflops_subnormal",
        ["run", "base.yaml", "--hw", "hw.yaml"],
        "error",
        {
            **BASE_FILES,
            "hw.yaml": (REPO / "hw_profiles" / "h100-sxm.yaml")
            .read_text()
            .replace("\n    bf16: ", "\n    bf16: 1.0e-300 #", 1),
        },
        "max_duration_s",
    ),
    # ---- unreadable errors
    Case(
        "error_echoes_5mb_value",
        ["run", "base.yaml", "--model", "m/config.json"],
        "error",
        {**BASE_FILES, "m/config.json": _hf_config(hidden_size="x" * 5_000_000)},
        "5,000,000 characters",
    ),
    Case(
        "error_echoes_huge_list",
        ["run", "base.yaml", "--model", "m/config.json"],
        "error",
        {**BASE_FILES, "m/config.json": _hf_config(hidden_size=[1] * 200_000)},
        "200,000 items",
    ),
    Case(
        "yaml_file_too_large",
        ["run", "big.yaml"],
        "error",
        {"big.yaml": "model: " + "x" * 5_000_000 + "\n"},
        "MiB",
    ),
    Case(
        "set_value_too_large",
        ["run", "base.yaml", "--set", "model=" + "x" * 5_000_000],
        "error",
        BASE_FILES,
        "5,000,000 characters",
    ),
    # ---- safe loading: no tag constructs an object
    Case(
        "yaml_python_tag",
        ["run", "evil.yaml"],
        "error",
        {"evil.yaml": "model: !!python/object/apply:os.system ['echo pwned']\n"},
        "",
    ),
    Case(
        "yaml_python_name_tag",
        ["run", "evil.yaml"],
        "error",
        {"evil.yaml": "model: !!python/name:os.system\n"},
        "",
    ),
]
