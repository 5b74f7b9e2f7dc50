"""`servesim run` and the shared renderers: flags -> config keys, outputs, exit codes."""

from __future__ import annotations

import json
import sys
import types

import pytest
from click.testing import CliRunner

from servesim.cli import _render, cli, main, run_cmd


@pytest.fixture
def fake_engine(monkeypatch):
    """The engine replaced by test_result's hand-made run; counts calls."""
    import servesim.sim

    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    try:
        from test_result import fake_run
    finally:
        sys.path.pop(0)
    calls = []

    def run(cfg, *, progress=None):
        calls.append(cfg)
        return fake_run(cfg, progress=progress)

    mod = types.ModuleType("servesim.sim.cluster")
    mod.run = run
    monkeypatch.setitem(sys.modules, "servesim.sim.cluster", mod)
    monkeypatch.setattr(servesim.sim, "cluster", mod, raising=False)
    return calls


def _main(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    cap = capsys.readouterr()
    return exc.value.code, cap.out, cap.err


def test_run_no_args_prints_readable_summary(fake_engine):
    res = CliRunner().invoke(cli, ["run"])
    assert res.exit_code == 0, res.output
    for text in (
        "requests",
        "throughput",
        "TTFT",
        "TPOT",
        "ITL",
        "E2E",
        "p99.9",
        "MFU",
        "KV cache",
    ):
        assert text in res.output
    assert "llama-3.1-8b" in res.output and "goodput" in res.output


def test_run_format_json_prints_the_summary(fake_engine):
    res = CliRunner().invoke(cli, ["run", "--format", "json", "--seed", "2"])
    data = json.loads(res.output)
    assert data["completed"] == 2 and data["sim_end_s"] == pytest.approx(2.44)


def test_run_flags_map_to_config_keys(fake_engine):
    res = CliRunner().invoke(cli, ["run", "-q", "--tp", "2", "--instances", "3", "--max-num-seqs", "64",
                                   "--set", "deployment.pools.0.scheduler.block_size=32"])  # fmt: skip
    assert res.exit_code == 0, res.output
    pool = fake_engine[-1].deployment.pools[0]
    assert (pool.parallelism.tp, pool.instances, pool.scheduler.max_num_seqs) == (2, 3, 64)
    assert pool.scheduler.block_size == 32
    assert res.output == ""  # --quiet with the table format prints nothing


def test_run_flag_keys_are_distinct_and_each_flag_exists():
    assert len(set(run_cmd.FLAG_KEYS.values())) == len(run_cmd.FLAG_KEYS)
    names = {p.name for p in run_cmd.run_command.params}
    assert set(run_cmd.FLAG_KEYS) <= names


def test_run_out_dir_holds_every_output(fake_engine, tmp_path):
    out = tmp_path / "res"
    res = CliRunner().invoke(cli, ["run", "-q", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert {"summary.json", "benchmark.json", "config.yaml", "requests.parquet", "steps.parquet",
            "timeseries.csv"} == {p.name for p in out.iterdir()}  # fmt: skip


def test_run_save_detailed_adds_per_request_lists(fake_engine, tmp_path):
    for flags, detailed in (([], False), (["--save-detailed"], True)):
        out = tmp_path / f"res{detailed}"
        res = CliRunner().invoke(cli, ["run", "-q", "--out", str(out), *flags])
        assert res.exit_code == 0, res.output
        bench = json.loads((out / "benchmark.json").read_text())
        assert ("itls" in bench) is detailed and bench["completed"] == 2


def test_run_unknown_scheduler_exits_2_with_one_line_and_no_out(fake_engine, tmp_path, capsys):
    out = tmp_path / "res"
    code, _, err = _main(["run", "--scheduler", "nope", "--out", str(out)], capsys)
    assert code == 2
    assert err.startswith("error:") and err.count("\n") == 1 and "policy" in err
    assert not out.exists() and not fake_engine


def test_run_bad_set_item_exits_2(fake_engine, capsys):
    code, _, err = _main(["run", "--set", "seed"], capsys)
    assert code == 2 and "KEY=VALUE" in err


def test_run_unknown_set_key_exits_2(fake_engine, capsys):
    code, _, err = _main(["run", "--set", "deployment.pools.0.colour=red"], capsys)
    assert code == 2 and "colour" in err


def test_run_rate_and_concurrency_together_exits_2(fake_engine, capsys):
    code, _, err = _main(["run", "--rate", "2", "--concurrency", "4"], capsys)
    assert code == 2 and "--concurrency" in err and not fake_engine


def test_run_out_is_foreign_folder_exits_2_before_simulating(fake_engine, tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("x")
    code, _, err = _main(["run", "--out", str(tmp_path)], capsys)
    assert code == 2 and "not a servesim result" in err
    assert not fake_engine and [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_parse_set_reads_values_as_yaml():
    assert run_cmd.parse_set(("a.b=5", "c=true", "d=[1, 2]", "e=x")) == {
        "a.b": 5, "c": True, "d": [1, 2], "e": "x"}  # fmt: skip


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "-"), (float("nan"), "-"), (1234567, "1,234,567"), (0.0, "0"), (12.3456, "12.3"),
     (0.012345, "0.0123"), (1234.5, "1,234"), (2.5e-5, "2.50e-05"), (True, "yes")],
)  # fmt: skip
def test_fmt_num_values_give_readable_text(value, text):
    assert _render.fmt_num(value) == text


def test_table_columns_are_aligned():
    text = _render.table([["a", 1.5, 10], ["bbb", 22.25, 3]], ["name", "x", "n"])
    lines = text.splitlines()
    assert len({len(line) for line in lines}) == 1
    assert lines[0].startswith("name") and lines[2].endswith("10")


def test_summary_text_shows_pools_and_energy_when_present():
    s = {"completed": 1, "num_requests": 1, "energy_kwh": 0.5, "cost_usd": 1.25,
         "pool.prefill.instances": 1, "pool.prefill.utilisation": 0.5,
         "pool.decode.instances": 2, "pool.decode.utilisation": 0.25}  # fmt: skip
    text = _render.summary_text(s)
    assert "energy" in text and "cost" in text and "prefill" in text and "25.0%" in text


# ------------------------------------------------------------------------------ real engine


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--model", "llama-3.1-405b"], "fit"),
        (["--rate", "-1", "--num-requests", "10"], "rate"),
        (["--scheduler", "fifo"], "policy"),
        (["--tp", "3"], "tp"),
    ],
)
def test_run_bad_input_real_engine_exits_2_and_writes_nothing(args, needle, tmp_path, capsys):
    out = tmp_path / "res"
    code, stdout, err = _main(["run", "-q", *args, "--out", str(out)], capsys)
    assert code == 2 and err.startswith("error:") and err.count("\n") == 1
    assert needle in err and stdout == ""
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_run_empty_trace_real_engine_exits_2(tmp_path, capsys):
    trace = tmp_path / "empty.csv"
    trace.write_text("")
    code, _, err = _main(
        ["run", "-q", "--trace", str(trace), "--out", str(tmp_path / "res")], capsys
    )
    assert code == 2 and err.startswith("error:") and not (tmp_path / "res").exists()


def test_run_small_real_run_prints_summary_and_writes_out(tmp_path):
    out = tmp_path / "res"
    res = CliRunner().invoke(cli, ["run", "--num-requests", "40", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "40 completed of 40" in res.output and "energy" in res.output
    assert json.loads((out / "summary.json").read_text())["completed"] == 40


def test_progress_line_goes_to_stderr_and_ends_with_newline(capsys):
    from servesim._progress import Bar

    bar = Bar("simulating", unit="req", force=True)
    bar(50, 200)
    bar(200, 200)
    bar.close()
    cap = capsys.readouterr()
    assert cap.out == "" and "simulating" in cap.err and "200/200" in cap.err
    assert "req/s" in cap.err and "ETA" in cap.err
    assert cap.err.endswith("\n")
