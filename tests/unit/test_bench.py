"""Virtual benchmark_serving: flag -> config mapping, printed block, matrices, and the JSON keys."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from servesim.specs import SpecError
from servesim.studies.bench import (
    CLIENT_KEYS,
    bench_config,
    bench_matrix,
    format_summary,
    matrix_points,
)

# `vllm bench serve --save-result` keys for --percentile-metrics ttft,tpot,itl,e2el
# --metric-percentiles 99 without --save-detailed (vllm/benchmarks/serve.py).
REAL_CLIENT_KEYS = set(CLIENT_KEYS) | {
    f"{s}_{m}_ms" for m in ("ttft", "tpot", "itl", "e2el") for s in ("mean", "median", "std", "p99")
}
# benchmark_serving.py (older client) writes these; servesim's files hold all of them too.
OLD_CLIENT_KEYS = {
    "date",
    "backend",
    "model_id",
    "tokenizer_id",
    "num_prompts",
    "request_rate",
    "burstiness",
    "max_concurrency",
    "duration",
    "completed",
    "total_input_tokens",
    "total_output_tokens",
    "request_throughput",
    "output_throughput",
    "total_token_throughput",
}


def test_bench_config_closed_loop_maps_concurrency_and_lengths():
    cfg = bench_config(
        model="llama-3.1-8b",
        hw="h100-sxm",
        tp=2,
        random_input_len=1000,
        random_output_len=200,
        random_range_ratio=0.5,
        num_prompts=80,
        max_concurrency=8,
    )
    wl = cfg["workload"]
    assert wl["clients"] == {"concurrency": 8} and wl["num_requests"] == 80
    assert wl["lengths"]["input"] == {"dist": "uniform", "mean": 1000, "range_ratio": 0.5}
    pool = cfg["deployment"]["pools"][0]
    assert pool["hardware"] == "h100-sxm" and pool["parallelism"]["tp"] == 2
    assert "trace" not in wl


def test_bench_config_rate_inf_without_concurrency_sends_all_at_once():
    cfg = bench_config(num_prompts=50)
    assert cfg["workload"]["clients"] == {"concurrency": 50}
    assert cfg["workload"]["lengths"]["output"] == {"dist": "fixed", "mean": 128}


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    """Request lists drawn like vLLM's client go to the cache: keep them in the test's folder."""
    monkeypatch.setenv("SERVESIM_CACHE", str(tmp_path / "cache"))


def _trace(cfg):
    from servesim.workload.traces import load_trace

    return load_trace(cfg["workload"]["trace"]["path"], "jsonl")


def test_bench_config_rate_draws_vllm_arrivals_rescaled_to_n_over_rate():
    cfg = bench_config(request_rate=4.0, burstiness=0.25, num_prompts=200)
    df = _trace(cfg)
    assert len(df) == 200 and cfg["workload"]["trace"]["format"] == "jsonl"
    # vLLM's client pins the last send at num_prompts / rate (serve.py get_request); the trace
    # is rebased to the first send, which comes one (random) gap after the start
    from servesim.studies.bench_requests import vllm_arrivals

    t = vllm_arrivals(200, 4.0, 0.25, seed=0)
    assert t[-1] == pytest.approx(50.0)
    assert df["arrival_s"].iloc[-1] == pytest.approx(50.0 - t[0])
    gaps = df["arrival_s"].diff().dropna().to_numpy()
    assert gaps.std() / gaps.mean() > 1.5  # burstiness 0.25: CV = 1/sqrt(0.25) = 2
    # same arguments, same file (named by its content); another seed, another list
    assert bench_config(request_rate=4.0, burstiness=0.25, num_prompts=200) == cfg
    assert bench_config(request_rate=4.0, burstiness=0.25, num_prompts=200, seed=1) != cfg


def test_bench_ramp_up_linear_rates_and_no_rescaling():
    from servesim.studies.bench_requests import ramp_rates, vllm_arrivals

    r = ramp_rates(5, "linear", 1.0, 9.0, math.inf)
    assert r.tolist() == [1.0, 3.0, 5.0, 7.0, 9.0]
    e = ramp_rates(3, "exponential", 1.0, 16.0, math.inf)
    assert e.tolist() == pytest.approx([1.0, 4.0, 16.0])
    # burstiness inf: constant gaps 1/rate_i, summed, not rescaled
    t = vllm_arrivals(5, math.inf, math.inf, ramp=("linear", 1.0, 9.0))
    assert t.tolist() == pytest.approx(np.cumsum([1, 1 / 3, 1 / 5, 1 / 7, 1 / 9]).tolist())
    with pytest.raises(SpecError, match="drop --request-rate"):
        bench_config(ramp_up_strategy="linear", ramp_up_start_rps=1, ramp_up_end_rps=5,
                     request_rate=3.0)  # fmt: skip
    with pytest.raises(SpecError, match="needs --ramp-up-start-rps"):
        bench_config(ramp_up_strategy="linear")


def test_bench_config_rate_with_concurrency_caps_open_loop():
    wl = bench_config(request_rate=4.0, max_concurrency=8, burstiness=0.25)["workload"]
    assert "trace" in wl and wl["max_concurrency"] == 8 and "clients" not in wl
    assert "max_concurrency" not in bench_config(request_rate=4.0)["workload"]


def test_bench_cli_rate_with_concurrency_writes_both_keys(tmp_path):
    from click.testing import CliRunner

    from servesim.cli import cli

    args = ["bench", "--model", "llama-3.1-8b", "--num-prompts", "12"]
    args += ["--random-input-len", "128", "--random-output-len", "8"]
    args += ["--request-rate", "50", "--max-concurrency", "3", "--save-result"]
    args += ["--result-dir", str(tmp_path), "--result-filename", "r.json"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "Request rate configured (RPS):           50.00" in res.output
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["request_rate"] == 50.0 and data["max_concurrency"] == 3
    assert data["completed"] == 12 and data["max_concurrent_requests"] <= 3


def test_bench_config_goodput_sets_slo():
    cfg = bench_config(goodput=["ttft:500", "tpot:50"])
    assert cfg["slo"] == {"ttft_ms": {"p99": 500.0}, "tpot_ms": {"p99": 50.0}}
    with pytest.raises(SpecError):
        bench_config(goodput=["itl:5"])


def test_format_summary_matches_client_layout():
    res = {
        "request_rate": "inf",
        "burstiness": 1.0,
        "max_concurrency": 8,
        "completed": 80,
        "failed": 0,
        "duration": 12.3456,
        "total_input_tokens": 100,
        "total_output_tokens": 50,
        "request_throughput": 6.5,
        "output_throughput": 4.0,
        "max_output_tokens_per_s": 9.0,
        "max_concurrent_requests": 8,
        "total_token_throughput": 12.0,
        "mean_ttft_ms": 1.5,
        "median_ttft_ms": 1.25,
        "p99_ttft_ms": 3.0,
    }
    lines = format_summary(res, "ttft", "99").splitlines()
    assert lines[3] == "{s:{c}^{n}}".format(s=" Serving Benchmark Result ", n=50, c="=")
    assert "Benchmark duration (s):                  12.35     " in lines
    assert "P99 TTFT (ms):                           3.00      " in lines
    assert lines[-1] == "=" * 50


def fake_bench(**kw):
    return {"output_throughput": kw["max_concurrency"] * 10.0, "servesim": {"simulated": True}}


MATRIX = {
    "prefix": "m",
    "model": "llama-3.1-8b",
    "tp": [1, 2],
    "isl_osl": [[1024, 1024], [8192, 1024]],
    "conc": [4, 8],
    "random_range_ratio": 0.8,
}


def test_matrix_names_files_and_scales_prompts_with_concurrency(tmp_path):
    common, points = matrix_points({**MATRIX, "result_dir": str(tmp_path)})
    assert len(points) == 8 and common["random_range_ratio"] == 0.8
    names = {p["file"].name for p in points}
    assert "m_tp2_isl8192_osl1024_conc8.json" in names
    assert {p["num_prompts"] for p in points} == {40, 80}


def test_matrix_skips_points_already_done(tmp_path):
    m = {**MATRIX, "result_dir": str(tmp_path)}
    calls = []

    def runner(**kw):
        calls.append(kw)
        return fake_bench(**kw)

    first = bench_matrix(m, runner=runner)
    assert [s["status"] for s in first] == ["done"] * 8 and len(calls) == 8
    (tmp_path / "m_tp1_isl1024_osl1024_conc4.json").unlink()
    second = bench_matrix(m, runner=runner)
    assert [s["status"] for s in second].count("skipped") == 7 and len(calls) == 9
    data = json.loads((tmp_path / "m_tp1_isl1024_osl1024_conc4.json").read_text())
    assert data["output_throughput"] == 40.0
    assert calls[0]["request_rate"] == math.inf and calls[0]["max_concurrency"] == 4


def test_matrix_point_that_does_not_fit_is_an_error_row_and_no_file(tmp_path):
    def runner(**kw):
        if kw["tp"] == 1:
            raise SpecError("x", "parallelism", "tp=1", "does not fit")
        return fake_bench(**kw)

    st = bench_matrix({**MATRIX, "result_dir": str(tmp_path)}, runner=runner)
    assert {s["status"] for s in st if s["tp"] == 1} == {"error"}
    assert not list(tmp_path.glob("m_tp1_*.json"))


TINY = dict(
    model="llama-3.1-8b",
    hw="h100-sxm",
    tp=1,
    random_input_len=256,
    random_output_len=32,
    num_prompts=24,
    max_concurrency=4,
    percentile_metrics="ttft,tpot,itl,e2el",
)


def test_bench_json_keys_equal_real_client_keys(tmp_path):
    from servesim.studies.bench import bench

    data = bench(**TINY, save_result=True, result_dir=str(tmp_path), result_filename="r.json")
    assert set(data) - {"servesim"} == REAL_CLIENT_KEYS
    assert set(data) >= OLD_CLIENT_KEYS
    on_disk = json.loads((tmp_path / "r.json").read_text())
    assert on_disk == json.loads(json.dumps(data))
    assert (
        data["completed"] == 24 and data["request_rate"] == "inf" and data["max_concurrency"] == 4
    )
    # units: durations in s, latencies in ms (e2e >= ttft), throughput = tokens / duration
    assert data["output_throughput"] == pytest.approx(
        data["total_output_tokens"] / data["duration"]
    )
    assert data["mean_e2el_ms"] >= data["mean_ttft_ms"] > 0


def test_bench_cli_prints_block_and_matrix_skips_done(tmp_path):
    from click.testing import CliRunner

    from servesim.cli import cli

    res = CliRunner().invoke(
        cli,
        [
            "bench",
            "--model",
            "llama-3.1-8b",
            "--num-prompts",
            "16",
            "--random-input-len",
            "128",
            "--random-output-len",
            "16",
            "--max-concurrency",
            "4",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "============ Serving Benchmark Result ============" in res.output
    assert "Successful requests:                     16" in res.output
    m = tmp_path / "m.yaml"
    m.write_text(
        json.dumps(
            {
                "prefix": "p",
                "model": "llama-3.1-8b",
                "tp": [1],
                "isl_osl": [[128, 16]],
                "conc": [2, 4],
                "prompts_per_conc": 3,
                "result_dir": "out",
            }
        )
    )
    res = CliRunner().invoke(cli, ["bench", "--matrix", str(m)])
    assert res.exit_code == 0, res.output
    assert sorted(f.name for f in (tmp_path / "out").glob("*.json")) == [
        "p_tp1_isl128_osl16_conc2.json",
        "p_tp1_isl128_osl16_conc4.json",
    ]
    res = CliRunner().invoke(cli, ["bench", "--matrix", str(m)])
    assert "0 run, 2 skipped" in res.output


def test_bench_config_file_keeps_deployment_replaces_workload(tmp_path):
    import yaml

    from servesim.specs.config import DEFAULT_CONFIG

    cfg = {
        **DEFAULT_CONFIG,
        "deployment": {
            "pools": [
                {
                    "role": "colocated",
                    "hardware": "h200-sxm",
                    "instances": 2,
                    "parallelism": {"tp": 1},
                }
            ]
        },
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = bench_config(config=str(path), num_prompts=10, max_concurrency=2, scheduler="orca")
    pool = out["deployment"]["pools"][0]
    assert pool["hardware"] == "h200-sxm" and pool["instances"] == 2
    assert pool["scheduler"]["policy"] == "orca"
    assert "trace" not in out["workload"] and out["workload"]["clients"] == {"concurrency": 2}
