"""vLLM interop: real `vllm bench serve` command lines through `servesim bench`, real result
files (written by hand from vLLM's documented keys) through `servesim compare`, saved results
(date, name, permissions, --append-result), datasets and the steady-state window."""

from __future__ import annotations

import json
import os
import shlex
import stat

import pytest
from servesim.compare import compare, content_keys, format_comparison

from servesim.cli import main
from servesim.studies.bench import bench


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SERVESIM_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    """Run `servesim ...` through main() (its exit codes and error lines): code, stderr."""
    with pytest.raises(SystemExit) as exc:
        main(args)
    return exc.value.code, capsys.readouterr().err


def _invoke(argv: list[str]):
    from click.testing import CliRunner

    from servesim.cli import cli

    return CliRunner().invoke(cli, argv)


# A command line as vLLM's docs and users write it (flags of vllm/benchmarks/serve.py), with
# servesim's deployment flags appended.
REAL_LINE = (
    "bench --backend vllm --base-url http://localhost:8000 --host 127.0.0.1 --port 8000 "
    "--endpoint /v1/completions --model meta-llama/Meta-Llama-3.1-8B-Instruct "
    "--served-model-name llama --tokenizer meta-llama/Llama-3.1-8B-Instruct "
    "--dataset-name random --input-len 256 --output-len 16 --random-prefix-len 64 "
    "--num-prompts 24 --request-rate 8 --burstiness 1.0 --max-concurrency 6 "
    "--goodput ttft:500 tpot:50 --metadata tp=1 gpu=h100 --temperature 0 --top-p 1 "
    "--percentile-metrics ttft,tpot,itl,e2el --metric-percentiles 50,99 --num-warmups 2 "
    "--ignore-eos --disable-tqdm --request-id-prefix x- --ready-check-timeout-sec 0 "
    "--save-result --hw h100-sxm"
)


def test_real_command_line_runs_and_saves_vllm_named_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")  # 2026-01-01 00:00:00 UTC
    argv = shlex.split(REAL_LINE) + ["--result-dir", str(tmp_path / "res")]
    res = _invoke(argv)
    assert res.exit_code == 0, res.output
    files = list((tmp_path / "res").iterdir())
    assert [f.name for f in files] == [
        "servesim-8.0qps-concurrency6-Meta-Llama-3.1-8B-Instruct-20260101-000000.json"
    ]
    data = json.loads(files[0].read_text())
    assert data["date"] == "20260101-000000"
    assert data["tp"] == "1" and data["gpu"] == "h100"  # --metadata, several after one flag
    assert data["request_goodput"] is not None  # --goodput, two SLOs after one flag
    assert data["total_input_tokens"] == 24 * (256 + 64)  # --input-len + --random-prefix-len
    assert data["total_output_tokens"] == 24 * 16
    assert "p50_e2el_ms" in data and "p99_itl_ms" in data
    assert data["servesim"]["ignore_eos"] is True  # outputs always run to full length
    # readable by colleagues: the mode a plain open() gives under the umask
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o666 & ~mask


def test_network_and_multimodal_datasets_exit_2_with_reason(capsys):
    for name, why in (("hf", "network"), ("random-mm", "multimodal"), ("sonnet", "chat")):
        code, out = run_cli(["bench", "--dataset-name", name, "--num-prompts", "2"], capsys)
        assert code == 2 and out.startswith("error:") and why in out, out
        assert "Traceback" not in out


def test_every_vllm_flag_is_accepted_or_documented():
    from servesim.cli.bench_cmd import bench_command
    from servesim.studies.bench_flags import KEY_FLAGS, NO_EFFECT, flag_table

    opts = {o for p in bench_command.params for o in getattr(p, "opts", [])}
    missing = [f for f in (*KEY_FLAGS, *NO_EFFECT) if f not in opts]
    assert missing == []
    assert len(flag_table()) == len(KEY_FLAGS) + len(NO_EFFECT)


def test_expand_nargs_splits_values_until_next_flag():
    from servesim.studies.bench_flags import expand_nargs

    got = expand_nargs(["--goodput", "ttft:5", "tpot:1", "--seed", "3", "--metadata", "--x"])
    assert got == ["--goodput", "ttft:5", "--goodput", "tpot:1", "--seed", "3", "--x"]


def test_date_option_and_reruns_with_other_seeds_do_not_overwrite(tmp_path):
    common = dict(model="llama-3.1-8b", random_input_len=64, random_output_len=4, num_prompts=4,
                  save_result=True, result_dir=str(tmp_path), date="20250102-030405")  # fmt: skip
    a = bench(**common)
    b = bench(**common, seed=7)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "servesim-infqps-llama-3.1-8b-20250102-030405.json",
        "servesim-infqps-llama-3.1-8b-seed7-20250102-030405.json",
    ]
    assert a["date"] == b["date"] == "20250102-030405"
    # without saving there is no wall clock in the output: identical for a seed
    x = bench(**{**common, "save_result": False, "date": None})
    y = bench(**{**common, "save_result": False, "date": None})
    assert x == y and x["date"] is None


def test_append_result_adds_lines_and_compare_reads_them(tmp_path):
    common = dict(model="llama-3.1-8b", random_input_len=64, random_output_len=4, num_prompts=4,
                  result_dir=str(tmp_path), result_filename="all.json", append_result=True)  # fmt: skip
    bench(**common, max_concurrency=1)
    bench(**common, max_concurrency=2)
    lines = (tmp_path / "all.json").read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["max_concurrency"] == 2
    df = compare(tmp_path / "all.json", tmp_path / "all.json")
    assert sorted(set(df["conc"])) == [1, 2] and (df["ratio"].dropna() == 1.0).all()


def _real_vllm_result(conc: int, thr: float, ttft: float, model: str) -> dict:
    """A `vllm bench serve --save-result` file (keys of vllm/benchmarks/serve.py, no
    --save-detailed) for --dataset-name random --random-input-len 64 --random-output-len 4
    --num-prompts 4 --max-concurrency CONC."""
    return {
        "date": "20250101-120000", "endpoint_type": "openai", "backend": "openai",
        "label": None, "model_id": model, "tokenizer_id": model, "num_prompts": 4,
        "request_rate": "inf", "burstiness": 1.0, "max_concurrency": conc, "duration": 1.0,
        "completed": 4, "failed": 0, "total_input_tokens": 256, "total_output_tokens": 16,
        "request_throughput": 4.0, "request_goodput": None, "output_throughput": thr,
        "total_token_throughput": thr * 17, "max_output_tokens_per_s": thr,
        "max_concurrent_requests": conc, "rtfx": 0.0,
        "mean_ttft_ms": ttft, "median_ttft_ms": ttft, "std_ttft_ms": 0.0, "p99_ttft_ms": ttft,
        "mean_tpot_ms": 8.0, "median_tpot_ms": 8.0, "std_tpot_ms": 0.0, "p99_tpot_ms": 8.0,
        "mean_itl_ms": 8.0, "median_itl_ms": 8.0, "std_itl_ms": 0.0, "p99_itl_ms": 8.0,
    }  # fmt: skip


def test_compare_matches_real_vllm_files_with_simulated_ones_by_content(tmp_path, capsys):
    real, sim = tmp_path / "real", tmp_path / "sim"
    real.mkdir()
    for conc, thr in ((1, 100.0), (2, 150.0)):
        name = f"openai-infqps-concurrency{conc}-Llama-3.1-8B-Instruct-20250101-120000.json"
        data = _real_vllm_result(conc, thr, 30.0, "meta-llama/Meta-Llama-3.1-8B-Instruct")
        (real / name).write_text(json.dumps(data))
    for conc in (1, 2):
        bench(model="llama-3.1-8b", random_input_len=64, random_output_len=4, num_prompts=4,
              max_concurrency=conc, save_result=True, result_dir=str(sim), date="1")  # fmt: skip
    keys = content_keys(json.loads(next(real.iterdir()).read_text()))
    assert keys == {"model": "llama-3.1-8b", "isl": 64, "osl": 4, "rate": "inf", "conc": 1}
    df = compare(real, sim)
    assert df.attrs["keys"] == ["model", "isl", "osl", "conc", "rate"]
    thr = df[df["metric"] == "output_throughput"]
    assert thr["conc"].tolist() == [1, 2]
    assert df.attrs["measured"] == "a" and "output_throughput" in df.attrs["mape"]
    # --by narrows the match; an unknown key is one clear error
    assert set(compare(real, sim, by="conc").attrs["keys"]) == {"conc"}
    code, out = run_cli(["compare", str(real), str(sim), "--by", "nope"], capsys)
    assert code == 2 and "error: compare: by = nope" in out


def test_two_single_files_compare_directly_and_say_what_differs(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(_real_vllm_result(8, 100.0, 30.0, "Qwen/Qwen3-32B")))
    b.write_text(json.dumps(_real_vllm_result(16, 120.0, 30.0, "Qwen/Qwen3-32B")))
    df = compare(a, b)
    assert df.attrs["differs"] == ["conc"]
    assert "differ in conc" in format_comparison(df)


def test_save_detailed_lists_start_times_like_the_newest_client():
    d = bench(num_prompts=6, random_input_len=64, random_output_len=4, save_detailed=True,
              request_rate=10.0, seed=2)  # fmt: skip
    assert len(d["start_times"]) == len(d["input_lens"]) == len(d["ttfts"]) == 6
    assert d["start_times"][0] == 0.0 and sorted(d["start_times"]) == d["start_times"]


def test_ramp_up_run_names_its_file_and_prints_like_vllm(tmp_path):
    argv = shlex.split(
        "bench --ramp-up-strategy linear --ramp-up-start-rps 1 --ramp-up-end-rps 10 "
        "--num-prompts 20 --random-input-len 64 --random-output-len 4 --save-result "
        "--date 20260101-000000 --disable-tqdm"
    ) + ["--result-dir", str(tmp_path / "res")]  # fmt: skip
    res = _invoke(argv)
    assert res.exit_code == 0, res.output
    assert "Will increase RPS from 1 to 10 RPS" in res.output
    (f,) = (tmp_path / "res").iterdir()
    assert f.name == "servesim-ramp-up-linear-1qps-10qps-llama-3.1-8b-20260101-000000.json"
    data = json.loads(f.read_text())
    assert (data["ramp_up_strategy"], data["ramp_up_start_rps"], data["ramp_up_end_rps"]) == (
        "linear", 1, 10)  # fmt: skip
