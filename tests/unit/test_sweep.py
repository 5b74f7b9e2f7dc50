"""Sweep expansion, resumability and the local/Dask executors, on a fake runner (no engine)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from servesim.sweep import load_sweep_spec, sweep

from servesim.specs import SpecError

SPEC = {
    "base": {"model": "llama-3.1-8b", "seed": 0},
    "grid": {"a.x": [1, 2, 3], "a.name": ["p", "q"]},
    "zip": {"b.u": [10, 20], "b.v": ["h1", "h2"]},
    "repeat": 2,
    "metrics": ["score", "half"],
}


def fake_runner(base, overrides, seed):
    """Deterministic stand-in for simulate: a summary computed from the inputs."""
    x = overrides.get("a.x", 0)
    u = overrides.get("b.u", 0)
    if x == 99:
        raise SpecError("fake", "a.x", 99, "does not fit")
    return {"score": x * 1000 + u + (seed or 0) * 0.5, "half": x / 2, "name": "n"}


class Boom(RuntimeError):
    pass


def make_failing_runner(after: int):
    calls = {"n": 0}

    def runner(base, overrides, seed):
        calls["n"] += 1
        if calls["n"] > after:
            raise Boom("interrupted")
        return fake_runner(base, overrides, seed)

    return runner, calls


def test_sweep_grid_zip_repeat_expands_full_product():
    spec = load_sweep_spec(SPEC)
    assert len(spec.points) == 3 * 2 * 2 * 2
    assert len({p.key for p in spec.points}) == len(spec.points)
    assert spec.input_keys == ["a.x", "a.name", "b.u", "b.v"]


def test_sweep_point_key_changes_with_base_content():
    a = load_sweep_spec(SPEC).points[0].key
    b = load_sweep_spec({**SPEC, "base": {"model": "llama-3.1-70b", "seed": 0}}).points[0].key
    assert a != b


def test_sweep_zip_lengths_differ_raises_specerror():
    with pytest.raises(SpecError, match="same length"):
        load_sweep_spec({**SPEC, "zip": {"b.u": [1, 2], "b.v": ["h1"]}})


def test_sweep_unknown_key_raises_specerror():
    with pytest.raises(SpecError, match="unknown key"):
        load_sweep_spec({**SPEC, "grids": {}})


def test_sweep_table_one_row_per_point_with_inputs_and_metrics(tmp_path):
    table = sweep(SPEC, jobs=1, out=tmp_path, runner=fake_runner)
    assert len(table) == 24
    row = table[(table["a.x"] == 2) & (table["b.u"] == 20) & (table["seed"] == 1)].iloc[0]
    assert row["score"] == 2020.5
    assert (tmp_path / "results.parquet").is_file() and (tmp_path / "results.csv").is_file()
    assert len(pd.read_parquet(tmp_path / "results.parquet")) == 24
    meta = json.loads((tmp_path / "sweep.json").read_text())
    assert meta["inputs"] == ["a.x", "a.name", "b.u", "b.v"]


def test_sweep_interrupted_then_restarted_runs_only_missing_points(tmp_path):
    runner, _ = make_failing_runner(after=5)
    with pytest.raises(Boom):
        sweep(SPEC, jobs=1, out=tmp_path, runner=runner)
    assert len(list((tmp_path / "points").glob("*.json"))) == 5
    runner2, calls = make_failing_runner(after=10**6)
    table = sweep(SPEC, jobs=1, out=tmp_path, runner=runner2)
    assert calls["n"] == 24 - 5
    assert len(table) == 24 and table["point"].is_unique


def test_sweep_killed_process_restarted_ends_with_one_row_per_point(tmp_path):
    spec_file = tmp_path / "s.yaml"
    spec_file.write_text(json.dumps({**SPEC, "out": "res"}))
    script = (
        "import time, sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_sweep import fake_runner\n"
        "from servesim.sweep import sweep\n"
        "def slow(b, o, s):\n"
        "    time.sleep(0.2)\n"
        "    return fake_runner(b, o, s)\n"
        f"sweep({str(spec_file)!r}, jobs=1, runner=slow)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    points = tmp_path / "res" / "points"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(list(points.glob("*.json"))) < 4:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = len(list(points.glob("*.json")))
    assert 4 <= finished < 24
    table = sweep(spec_file, jobs=1, runner=fake_runner)
    assert len(table) == 24 and table["point"].is_unique
    assert not list(points.glob(".*.tmp"))
    expected = sweep(SPEC, jobs=1, runner=fake_runner)
    pd.testing.assert_frame_equal(table.reset_index(drop=True), expected.reset_index(drop=True))


def test_sweep_specerror_point_recorded_as_error_row(tmp_path):
    spec = {**SPEC, "grid": {"a.x": [1, 99]}, "zip": {}, "repeat": 1}
    table = sweep(spec, jobs=1, out=tmp_path, runner=fake_runner)
    bad = table[table["a.x"] == 99].iloc[0]
    assert "does not fit" in bad["error"] and pd.isna(bad["score"])
    assert table[table["a.x"] == 1]["error"].isna().all()


def test_sweep_process_pool_and_dask_give_identical_rows():
    distributed = pytest.importorskip("dask.distributed")
    local = sweep(SPEC, jobs=2, runner=fake_runner)
    with distributed.LocalCluster(n_workers=2, processes=False, dashboard_address=None) as cluster:
        remote = sweep(SPEC, dask=cluster.scheduler_address, runner=fake_runner)
    pd.testing.assert_frame_equal(local, remote)
    serial = sweep(SPEC, jobs=1, runner=fake_runner)
    pd.testing.assert_frame_equal(local, serial)


def test_sweep_metrics_all_keeps_every_scalar_key():
    table = sweep(
        {**SPEC, "metrics": "all", "zip": {}, "grid": {"a.x": [1]}}, jobs=1, runner=fake_runner
    )
    assert {"score", "half", "name"} <= set(table.columns)


TINY_BASE = {
    "model": "llama-3.1-8b",
    "dtype": "bf16",
    "deployment": {
        "pools": [
            {
                "role": "colocated",
                "hardware": "h100-sxm",
                "instances": 1,
                "parallelism": {"tp": 1},
                "scheduler": {"policy": "sarathi"},
            }
        ]
    },
    "workload": {
        "clients": {"concurrency": 2},
        "lengths": {
            "input": {"dist": "uniform", "mean": 256, "range_ratio": 0.5},
            "output": {"dist": "uniform", "mean": 32, "range_ratio": 0.5},
        },
        "num_requests": 30,
    },
    "seed": 0,
}
TINY_SWEEP = {"base": TINY_BASE, "grid": {"workload.clients.concurrency": [2, 8]}, "seeds": [0, 1]}


def test_sweep_real_engine_local_pool_and_dask_identical_rows():
    distributed = pytest.importorskip("dask.distributed")
    local = sweep(TINY_SWEEP, jobs=2)
    assert len(local) == 4 and local["error"].isna().all()
    assert (local["completed"] == 30).all()
    with distributed.LocalCluster(n_workers=2, processes=False, dashboard_address=None) as cluster:
        remote = sweep(TINY_SWEEP, dask=cluster.scheduler_address)
    pd.testing.assert_frame_equal(local, remote)
    hi = local[local["workload.clients.concurrency"] == 8]["output_throughput"].mean()
    lo = local[local["workload.clients.concurrency"] == 2]["output_throughput"].mean()
    assert hi > lo


def test_sweep_cli_writes_tables_and_resumes(tmp_path):
    from click.testing import CliRunner

    from servesim.cli import cli

    spec = tmp_path / "s.yaml"
    spec.write_text(json.dumps({**TINY_SWEEP, "seeds": [0], "out": "res"}))
    res = CliRunner().invoke(cli, ["sweep", str(spec), "-j", "1", "--quiet"])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(tmp_path / "res" / "results.csv")
    assert len(table) == 2 and "ttft_ms_p99" in table
    before = {f.name: f.stat().st_mtime_ns for f in (tmp_path / "res" / "points").iterdir()}
    res = CliRunner().invoke(cli, ["sweep", str(spec), "-j", "1", "--quiet"])
    after = {f.name: f.stat().st_mtime_ns for f in (tmp_path / "res" / "points").iterdir()}
    assert res.exit_code == 0 and before == after


def test_sweep_error_points_are_retried_on_restart(tmp_path):
    spec = {**SPEC, "grid": {"a.x": [1, 99]}, "zip": {}, "repeat": 1}
    sweep(spec, jobs=1, out=tmp_path, runner=fake_runner)
    runner, calls = make_failing_runner(after=10**6)
    table = sweep(spec, jobs=1, out=tmp_path, runner=runner)
    assert calls["n"] == 1 and len(table) == 2
