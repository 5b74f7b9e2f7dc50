"""Bad input on the command line: one `error: ...` line naming what and where, exit code 2, no
traceback, and nothing half-written. Every case fails before any simulation runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from servesim.cli import main, run_cmd


def _exit(args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    cap = capsys.readouterr()
    return exc.value.code, cap.out, cap.err


def _bad(args: list[str], capsys) -> str:
    """The one error line of a command that must fail with exit code 2."""
    code, _, err = _exit(args, capsys)
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    f = tmp_path / "afile"
    f.write_text("x")
    return f


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    d = tmp_path / "run1"
    d.mkdir()
    (d / "summary.json").write_text(json.dumps({"output_throughput": 10.0, "ttft_ms_p99": 5.0}))
    return d


# ------------------------------------------------------------------ click usage errors


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["bench", "--num-prompts", "0"], "--num-prompts"),
        (["list", "nosuch"], "nosuch"),
        (["cost", "--pricing", "x"], "--pricing"),
        (["report", ".", "--title", "t"], "--out"),
    ],
)
def test_cli_click_usage_error_is_one_error_line_exit_2(args, needle, capsys):
    err = _bad(args, capsys)
    assert needle in err and "servesim " in err


def test_cli_no_command_prints_help_not_error(capsys):
    code, out, err = _exit([], capsys)
    assert "Usage:" in out + err and "error:" not in err
    assert code in (0, 2)


def test_cli_os_error_becomes_one_line_exit_2(monkeypatch, run_dir, tmp_path, capsys):
    import servesim.report as report_mod

    def refuse(*_a, **_k):
        raise PermissionError(13, "Permission denied", str(tmp_path / "r.html"))

    monkeypatch.setattr(report_mod, "report", refuse)
    monkeypatch.setattr("servesim.report", refuse, raising=False)
    err = _bad(["report", str(run_dir), "-o", str(tmp_path / "r.html")], capsys)
    assert "Permission denied" in err and "r.html" in err


# ------------------------------------------------------------------ output paths


def test_run_out_under_a_file_exits_2_before_simulating(a_file, capsys):
    err = _bad(["run", "-q", "--out", str(a_file / "sub")], capsys)
    assert "not a directory" in err and str(a_file) in err


def test_report_out_under_a_file_exits_2(run_dir, a_file, capsys):
    err = _bad(["report", str(run_dir), "-o", str(a_file / "r.html")], capsys)
    assert "cannot be created" in err


def test_compare_output_under_a_file_exits_2_and_prints_no_table(run_dir, a_file, capsys):
    code, out, err = _exit(
        ["compare", str(run_dir), str(run_dir), "-o", str(a_file / "x.csv")], capsys
    )
    assert code == 2 and out == "" and "cannot be created" in err


def test_calibrate_out_under_a_file_exits_2(tmp_path, a_file, capsys):
    csv = tmp_path / "m.csv"
    csv.write_text("a,b\n1,2\n")
    err = _bad(["calibrate", str(csv), "--hw", "h100-sxm", "--out", str(a_file / "f.yaml")], capsys)
    assert "calibrate" in err and "cannot be created" in err


def test_bench_result_dir_under_a_file_exits_2_before_simulating(a_file, capsys):
    args = ["bench", "--num-prompts", "2", "--save-result", "--result-dir", str(a_file / "d")]
    err = _bad(args, capsys)
    assert "bench" in err and "not a directory" in err


def test_bench_matrix_result_dir_under_a_file_exits_2(tmp_path, a_file, capsys):
    m = tmp_path / "m.yaml"
    m.write_text(
        f"prefix: p\nresult_dir: {a_file / 'res'}\ntp: [1]\nisl_osl: [[128, 16]]\nconc: [1]\n"
    )
    err = _bad(["bench", "--matrix", str(m)], capsys)
    assert "bench matrix" in err


def test_sweep_out_under_a_file_exits_2(tmp_path, a_file, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text("base: {model: llama-3.1-8b}\ngrid: {seed: [0]}\n")
    err = _bad(["sweep", str(spec), "--out", str(a_file / "o")], capsys)
    assert "sweep" in err and not (a_file.parent / "s_results").exists()


def test_plan_out_under_a_file_exits_2(a_file, capsys):
    args = ["plan", "--model", "llama-3.1-8b", "--rate", "1", "--slo-tpot-p99", "50",
            "--hw", "h100-sxm", "--out", str(a_file / "p")]  # fmt: skip
    assert "plan" in _bad(args, capsys)


# ------------------------------------------------------------------ wrong or corrupt inputs


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("empty.csv", b"", "empty CSV"),
        ("bad.parquet", b"PAR1garbage", "malformed Parquet"),
        ("x.json", b'{"a": 1}', "not a benchmark result"),
        ("broken.json", b"{not json", "not a readable JSON"),
        ("ab.csv", b"a,b\n1,2\n", "not a sweep table"),
    ],
)
def test_report_wrong_file_exits_2_and_writes_nothing(name, content, needle, tmp_path, capsys):
    f = tmp_path / name
    f.write_bytes(content)
    out = tmp_path / "r.html"
    err = _bad(["report", str(f), "-o", str(out)], capsys)
    assert needle in err and name in err and not out.exists()


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("empty.csv", b"", "empty CSV"),
        ("bad.parquet", b"PAR1garbage", "malformed Parquet"),
        ("x.json", b'{"a": 1}', "not a benchmark result"),
    ],
)
def test_compare_wrong_file_exits_2(name, content, needle, tmp_path, run_dir, capsys):
    f = tmp_path / name
    f.write_bytes(content)
    err = _bad(["compare", str(f), str(run_dir)], capsys)
    assert needle in err and name in err


def test_compare_corrupt_summary_in_run_dir_exits_2(run_dir, capsys):
    (run_dir / "summary.json").write_text("{oops")
    assert "summary.json" in _bad(["compare", str(run_dir), str(run_dir)], capsys)


def test_cost_csv_target_exits_2(tmp_path, capsys):
    f = tmp_path / "ab.csv"
    f.write_text("a,b\n1,2\n")
    assert "not a run directory or a config" in _bad(["cost", str(f)], capsys)


@pytest.mark.parametrize("command", [["sweep"], ["show", "model"]])
def test_empty_yaml_says_empty(command, tmp_path, capsys):
    f = tmp_path / "empty.yaml"
    f.write_text("")
    err = _bad([*command, str(f)], capsys)
    assert "empty" in err and "None" not in err


def test_trace_stats_negative_tokens_shows_plain_value(tmp_path, capsys):
    f = tmp_path / "neg.csv"
    f.write_text("arrival,prompt_tokens,output_tokens\n0,10,5\n1,-5,5\n")
    err = _bad(["trace", "stats", str(f)], capsys)
    assert "line 3" in err and "= -5" in err and "np." not in err


# ------------------------------------------------------------------ impossible deployments


def test_roofline_model_that_does_not_fit_exits_2(capsys):
    args = ["roofline", "--model", "llama-3.1-70b", "--hw", "h100-sxm", "--decode", "8@1024"]
    assert "does not fit" in _bad(args, capsys)


def test_plan_where_nothing_fits_exits_2_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "plan"
    args = ["plan", "--model", "llama-3.1-70b", "--rate", "1", "--slo-tpot-p99", "50",
            "--hw", "h100-sxm", "--tp", "1", "--pp", "1", "--out", str(out)]  # fmt: skip
    assert "does not fit" in _bad(args, capsys) and not out.exists()


@pytest.mark.parametrize("rate", ["-1", "0"])
def test_plan_non_positive_rate_exits_2(rate, capsys):
    args = ["plan", "--model", "llama-3.1-8b", "--rate", rate, "--slo-tpot-p99", "50"]
    assert "rate" in _bad(args, capsys)


# ------------------------------------------------------------------ flags


def test_run_trace_flag_detects_the_trace_format():
    assert run_cmd.flag_overrides({"trace": "t.csv"}) == {
        "workload.trace.path": "t.csv",
        "workload.trace.format": None,
    }


def test_run_trace_flag_format_can_still_be_set():
    out = run_cmd.flag_overrides({"trace": "t.csv", "set_items": ("workload.trace.format=csv",)})
    assert out["workload.trace.format"] == "csv"


def test_sweep_where_no_point_is_a_valid_config_exits_2_and_writes_nothing(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text("base: {model: nosuch-model}\ngrid: {seed: [0, 1]}\n")
    out = tmp_path / "o"
    err = _bad(["sweep", str(spec), "--out", str(out)], capsys)
    assert "nosuch-model" in err and not out.exists()


@pytest.mark.parametrize(
    ("flags", "needle"),
    [(["--pricing", "nosuch"], "pricing"), (["--tp", "abc"], "--tp"), (["--caps", "0"], "--caps")],
)
def test_plan_bad_flag_exits_2(flags, needle, capsys):
    args = ["plan", "--model", "llama-3.1-8b", "--rate", "1", "--slo-tpot-p99", "50", *flags]
    assert needle in _bad(args, capsys)
