"""result.simulate / Result.to_dir: outputs, atomic writes, config round trip (fake and real engine)."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pandas as pd
import pytest
import yaml
from _fake_raw import REQ_COLS, STEP_COLS, FakeRaw, Inst

from servesim import result as result_mod
from servesim.specs.common import SpecError


def fake_run(cfg, *, progress=None):
    """Two requests on one instance (the hand-worked run of test_metrics), offset by the seed."""
    t0 = float(cfg.seed)
    reqs = [(0, 0.00, 0.00, 0.10, 0.40, 10, 4, 0, 0, 0, -1, 0.0),
            (1, 0.12, 0.15, 0.35, 0.44, 20, 3, 0, 0, 0, -1, 0.0)]  # fmt: skip
    steps = [(0, 0.00, 0.10, 10, 0, 1), (0, 0.10, 0.05, 0, 1, 1), (0, 0.15, 0.20, 20, 1, 2),
             (0, 0.35, 0.05, 0, 2, 2), (0, 0.40, 0.04, 0, 1, 1)]  # fmt: skip
    if progress:
        progress(2, 2)
    req = {c: np.array([r[i] for r in reqs]) for i, c in enumerate(REQ_COLS)}
    for c in ("arrival_s", "scheduled_s", "first_token_s", "finish_s"):
        req[c] = req[c] + t0
    st = {c: np.zeros(len(steps)) for c in STEP_COLS}
    for i, c in enumerate(STEP_COLS[:6]):
        st[c] = np.array([s[i] for s in steps], dtype=float)
    st["start_s"] = st["start_s"] + t0
    for c in ("instance", "decode_seqs", "batch_size", "waiting", "running", "new_tokens"):
        st[c] = st[c].astype(np.int64)
    st["new_tokens"] = np.array([1, 1, 2, 2, 1])
    st["kv_used_blocks"] = np.array([10.0, 10, 20, 20, 10])
    st["kv_total_blocks"] = np.full(5, 100.0)
    st["flops"] = np.full(5, 1e12)
    st["compute_s"] = st["duration_s"].copy()
    inst = Inst(0, "colocated", "colocated", "h100-sxm", 1, 989e12, 3.35e12, 700.0, 80.0)
    return FakeRaw(req, st, [inst], t0 + 0.44)


@pytest.fixture
def fake_engine(monkeypatch):
    """servesim.sim.cluster replaced by fake_run (the engine's contract, hand-made output)."""
    import servesim.sim

    mod = types.ModuleType("servesim.sim.cluster")
    mod.run = fake_run
    monkeypatch.setitem(sys.modules, "servesim.sim.cluster", mod)
    monkeypatch.setattr(servesim.sim, "cluster", mod, raising=False)
    return mod


def test_simulate_fake_engine_builds_summary_and_frames(fake_engine):
    res = result_mod.simulate()
    assert res.summary["completed"] == 2
    assert res.summary["duration_s"] == pytest.approx(0.44)
    assert list(res.requests["ttft_s"]) == pytest.approx([0.10, 0.23])
    assert res.requests["tpot_s"].tolist() == pytest.approx([0.1, 0.045])
    assert len(res.steps) == 5 and "decode_seqs" in res.steps
    assert res.config.model.name == "llama-3.1-8b"


def test_simulate_overrides_reach_the_config(fake_engine):
    res = result_mod.simulate(None, overrides={"seed": 3})
    assert res.config.seed == 3 and res.summary["sim_end_s"] == pytest.approx(3.44)


def test_to_dir_writes_every_output_and_they_read_back(fake_engine, tmp_path):
    res = result_mod.simulate()
    out = res.to_dir(tmp_path / "run")
    assert sorted(p.name for p in out.iterdir()) == sorted(result_mod.OUTPUT_FILES)
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(res.summary))
    pd.testing.assert_frame_equal(pd.read_parquet(out / "requests.parquet"), res.requests)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "steps.parquet"), res.steps)
    bench = json.loads((out / "benchmark.json").read_text())
    assert bench["completed"] == 2 and bench["model_id"] == "llama-3.1-8b"
    assert "itls" not in bench and "ttfts" not in bench  # aggregates only by default
    detailed = res.to_dir(tmp_path / "detailed", detailed=True)
    bench = json.loads((detailed / "benchmark.json").read_text())
    assert len(bench["ttfts"]) == 2 and len(bench["itls"]) == 2
    ts = pd.read_csv(out / "timeseries.csv")
    assert {"time_s", "instance", "batch_size", "kv_usage", "waiting"} <= set(ts.columns)
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["model"] == "llama-3.1-8b" and cfg["seed"] == 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dirs left


def test_to_dir_config_yaml_reloads_to_the_same_run(fake_engine, tmp_path):
    res = result_mod.simulate(None, overrides={"seed": 2})
    out = res.to_dir(tmp_path / "run")
    again = result_mod.simulate(str(out / "config.yaml"))
    assert again.summary == res.summary


def test_to_dir_failed_write_leaves_target_absent(fake_engine, tmp_path, monkeypatch):
    res = result_mod.simulate()

    def boom(self, folder, detailed):
        (folder / "summary.json").write_text("{}")
        raise RuntimeError("disk full")

    monkeypatch.setattr(result_mod.Result, "_write", boom)
    with pytest.raises(RuntimeError):
        res.to_dir(tmp_path / "run")
    assert list(tmp_path.iterdir()) == []


def test_to_dir_failed_write_keeps_previous_result_untouched(fake_engine, tmp_path, monkeypatch):
    res = result_mod.simulate()
    out = res.to_dir(tmp_path / "run")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    monkeypatch.setattr(result_mod.Result, "_write", lambda *a: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        res.to_dir(out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_to_dir_replaces_a_previous_result(fake_engine, tmp_path):
    out = result_mod.simulate().to_dir(tmp_path / "run")
    result_mod.simulate(None, overrides={"seed": 1}).to_dir(out)
    assert json.loads((out / "summary.json").read_text())["sim_end_s"] == pytest.approx(1.44)


def test_to_dir_non_result_folder_is_spec_error(fake_engine, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(SpecError, match="not a servesim result"):
        result_mod.simulate().to_dir(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_resolve_config_rate_override_switches_trace_to_poisson():
    cfg = result_mod.resolve_config(None, {"workload.arrivals.rate": 5, "workload.num_requests": 9})
    assert cfg.workload.trace is None
    assert cfg.workload.arrivals.process == "poisson" and cfg.workload.arrivals.rate == 5


def test_resolve_config_concurrency_override_switches_to_clients():
    cfg = result_mod.resolve_config(
        None, {"workload.clients.concurrency": 8, "workload.num_requests": 50}
    )
    assert cfg.workload.trace is None and cfg.workload.clients.concurrency == 8


def test_resolve_config_two_sources_is_spec_error():
    with pytest.raises(SpecError, match="only one of"):
        result_mod.resolve_config(
            None, {"workload.clients.concurrency": 8, "workload.arrivals.rate": 1}
        )


@pytest.mark.parametrize(
    ("end", "step"), [(0.44, 0.001), (100.0, 0.2), (1000.0, 2.0), (3600.0, 10.0)]
)
def test_auto_interval_end_time_gives_125_step(end, step):
    assert result_mod.auto_interval(end) == pytest.approx(step)


# ------------------------------------------------------------------------------ real engine


def test_to_dir_real_engine_config_yaml_reruns_identically(tmp_path):
    res = result_mod.simulate(None, overrides={"workload.num_requests": 60, "seed": 4})
    out = res.to_dir(tmp_path / "a")
    again = result_mod.simulate(str(out / "config.yaml"))
    assert again.summary == res.summary
    pd.testing.assert_frame_equal(again.requests, res.requests)
    again.to_dir(tmp_path / "b")
    for name in result_mod.OUTPUT_FILES:  # same inputs and seed, same bytes
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_simulate_real_engine_summary_is_consistent_with_records():
    res = result_mod.simulate(None, overrides={"workload.num_requests": 80})
    s, req, steps = res.summary, res.requests, res.steps
    assert s["completed"] == s["num_requests"] == 80
    assert (
        s["total_output_tokens"]
        == int(req["output_tokens"].sum())
        == int(steps["new_tokens"].sum())
    )
    assert s["ttft_ms_mean"] == pytest.approx(req["ttft_s"].mean() * 1e3, rel=1e-9)
    assert "energy_kwh" in s and "cost_usd" in s


def test_simulate_accepts_mapping_and_runconfig(fake_engine):
    from servesim.specs.config import DEFAULT_CONFIG, load_config

    from_dict = result_mod.simulate({**DEFAULT_CONFIG, "seed": 5})
    assert from_dict.config.seed == 5
    cfg = load_config(None)
    assert result_mod.simulate(cfg).config is cfg
    assert result_mod.simulate(cfg, overrides={"seed": 6}).config.seed == 6
