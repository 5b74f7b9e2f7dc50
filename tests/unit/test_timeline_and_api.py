"""The Perfetto timeline export, and the Python ergonomics of the package (repr, dir, typing)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import servesim
from servesim.studies.timeline import LINK_PID, trace_events

POOL = {"hardware": "h100-sxm", "parallelism": {"tp": 1},
        "scheduler": {"policy": "sarathi", "max_num_seqs": 64, "max_num_batched_tokens": 4096}}  # fmt: skip


def _cfg(pools, n=12):
    return {
        "model": "llama-3.1-8b",
        "deployment": {"pools": pools},
        "workload": {
            "arrivals": {"process": "poisson", "rate": 20.0},
            "num_requests": n,
            "lengths": {"input": 512, "output": 16},
        },  # fmt: skip
        "seed": 3,
    }


@pytest.fixture(scope="module")
def colocated():
    return servesim.simulate(_cfg([{"role": "colocated", **POOL, "instances": 2}]))


def test_timeline_steps_counters_and_requests_match_the_logs(colocated):
    ev = trace_events(colocated)["traceEvents"]
    steps = [e for e in ev if e["ph"] == "X" and e["cat"] == "step"]
    log = colocated.steps
    assert len(steps) == len(log)
    # every step slice is one row of the step log: same instance, start and duration (us)
    got = sorted((e["pid"], e["ts"], e["dur"]) for e in steps)
    want = sorted((int(i), round(s * 1e6, 3), round(d * 1e6, 3))
                  for i, s, d in zip(log["instance"], log["start_s"], log["duration_s"]))  # fmt: skip
    assert got == want
    assert sum(e["args"]["new_tokens"] for e in steps) == int(log["new_tokens"].sum())
    assert {e["pid"] for e in steps} == {0, 1}
    names = [e["args"]["name"] for e in ev if e["ph"] == "M" and e["name"] == "process_name"]
    assert names == ["instance 0: colocated (colocated, h100-sxm)",
                     "instance 1: colocated (colocated, h100-sxm)"]  # fmt: skip
    kv = [e for e in ev if e["ph"] == "C" and e["name"] == "KV blocks"]
    assert len(kv) == len(log)
    begins = [e for e in ev if e["ph"] == "b"]
    ends = {e["id"]: e["ts"] for e in ev if e["ph"] == "e"}
    assert len(begins) == 12 and all(ends[b["id"]] >= b["ts"] for b in begins)


def test_timeline_is_deterministic_and_written_by_the_cli(tmp_path, colocated):
    from click.testing import CliRunner

    from servesim.cli import cli

    a = json.dumps(trace_events(colocated))
    b = json.dumps(trace_events(servesim.simulate(_cfg([{"role": "colocated", **POOL,
                                                          "instances": 2}]))))  # fmt: skip
    assert a == b
    out = tmp_path / "run.json"
    res = CliRunner().invoke(cli, ["run", "--num-requests", "10", "-q", "--timeline-out", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["displayTimeUnit"] == "ms" and data["traceEvents"]


def test_timeline_shows_kv_transfers_of_a_pd_split():
    res = servesim.simulate(_cfg([{"role": "prefill", **POOL}, {"role": "decode", **POOL}], n=6))
    ev = trace_events(res)["traceEvents"]
    moves = [e for e in ev if e.get("cat") == "kv_transfer" and e["ph"] == "X"]
    assert len(moves) == 6 and all(e["pid"] == LINK_PID for e in moves)
    t = res.raw.transfers
    assert sorted(e["args"]["bytes"] for e in moves) == sorted(float(x) for x in t["bytes"])
    flows = [e for e in ev if e.get("cat") == "kv_transfer" and e["ph"] in ("s", "f")]
    assert len(flows) == 12


def test_result_repr_is_one_short_line(colocated):
    text = repr(colocated)
    assert text.startswith("<Result llama-3.1-8b: 12/12 requests") and "\n" not in text
    assert len(text) < 120


def test_package_dir_lists_the_lazy_api_and_ships_py_typed():
    names = dir(servesim)
    for name in ("simulate", "sweep", "bench", "plan", "compare", "report", "Result"):
        assert name in names
    assert (Path(servesim.__file__).parent / "py.typed").is_file()


def test_html_report_names_model_hardware_parallelism_engine_workload(tmp_path, colocated):
    colocated.to_dir(tmp_path / "run")
    out = servesim.report(tmp_path / "run", tmp_path / "r.html")
    text = out.read_text()
    for want in ("llama-3.1-8b", "2 x h100-sxm (tp1)", "engine vllm", "sarathi batching",
                 "poisson arrivals at 20.0 req/s", "Latency CDFs", "queue over time"):  # fmt: skip
        assert want in text, want


def test_report_and_calibrate_extras_missing_are_one_clear_error(tmp_path, monkeypatch, colocated):
    import sys

    colocated.to_dir(tmp_path / "run")
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as without servesim[report]
    with pytest.raises(servesim.SpecError, match=r"pip install 'servesim\[report\]'"):
        servesim.report(tmp_path / "run", tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()


def test_run_out_folder_and_files_are_readable_by_others(tmp_path, colocated):
    import os
    import stat

    mask = os.umask(0)
    os.umask(mask)
    out = colocated.to_dir(tmp_path / "run")
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~mask  # not mkdtemp's 0700
    for f in out.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o666 & ~mask, f.name
