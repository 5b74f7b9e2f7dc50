"""Golden runs: each checked-in summary is reproduced to 1e-9, summary.json and requests.parquet
byte for byte, and invariants hold on each run.

Regenerate the expected files with `python -m tests.golden.regenerate` (see regenerate.py).
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from servesim import metrics

_spec = importlib.util.spec_from_file_location(
    "golden_regenerate", Path(__file__).parent / "regenerate.py"
)
golden = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(golden)

NAMES = golden.names()
_CACHE: dict[str, object] = {}


def result(name: str):
    """Each golden config runs once per test session."""
    if name not in _CACHE:
        _CACHE[name] = golden.run(name)
    return _CACHE[name]


def _same(a, b) -> bool:
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


@pytest.mark.parametrize("name", NAMES)
def test_golden_output_files_are_byte_identical(name, tmp_path):
    """summary.json and requests.parquet as ``to_dir`` writes them equal the checked-in bytes.

    Parquet files carry the writer's versions (pyarrow ``created_by``, pandas metadata); where
    they differ from the checked-in file's, the decoded columns must still be equal bit for bit.
    """
    import pyarrow.parquet as pq

    hint = f"output bytes changed; if intended, run `{golden.REGENERATE}` and review the diff"
    out = result(name).to_dir(tmp_path / "run", detailed=False)
    want = golden.BYTES / f"{name}.summary.json"
    assert (out / "summary.json").read_bytes() == want.read_bytes(), hint
    got_pq, want_pq = out / "requests.parquet", golden.BYTES / f"{name}.requests.parquet"
    got_meta, want_meta = pq.read_metadata(got_pq), pq.read_metadata(want_pq)
    same_writer = got_meta.created_by == want_meta.created_by and (
        got_meta.metadata == want_meta.metadata
    )
    if same_writer:
        assert got_pq.read_bytes() == want_pq.read_bytes(), hint
    got, exp = pq.read_table(got_pq), pq.read_table(want_pq)
    assert got.column_names == exp.column_names, hint
    for col in got.column_names:  # bit equality, NaN included
        a, b = got[col].to_numpy(), exp[col].to_numpy()
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), f"{hint}: column {col}"


def test_golden_configs_exist():
    assert len(NAMES) >= 3


@pytest.mark.parametrize("name", NAMES)
def test_golden_summary_matches_checked_in_values(name):
    got = golden._finite  # same null-for-NaN rule as the writer
    summary = {k: got(v) for k, v in result(name).summary.items()}
    want = golden.expected(name)
    hint = f"results changed; if intended, run `{golden.REGENERATE}` and review the diff"
    assert sorted(summary) == sorted(want), hint
    diff = {k: (want[k], summary[k]) for k in want if not _same(want[k], summary[k])}
    assert not diff, f"{hint}: {dict(list(diff.items())[:8])}"


@pytest.mark.parametrize("name", NAMES)
def test_golden_requests_conserved(name):
    res = result(name)
    s, req, steps = res.summary, res.requests, res.steps
    assert s["completed"] == s["num_requests"] == res.config.workload.num_requests
    assert req["request_id"].is_unique
    # every output token is emitted by exactly one step
    assert (
        int(steps["new_tokens"].sum())
        == int(req["output_tokens"].sum())
        == s["total_output_tokens"]
    )
    # every prompt token not served from cache is prefilled at least once (more after recompute)
    computed = int(steps["prefill_tokens"].sum())
    needed = int((req["prompt_tokens"] - req["cached_tokens"]).sum())
    assert computed >= needed
    if s["preemptions"] == 0:
        assert computed == needed


@pytest.mark.parametrize("name", NAMES)
def test_golden_causality_holds(name):
    res = result(name)
    req, steps = res.requests, res.steps
    assert (req["arrival_s"] <= req["scheduled_s"]).all()
    assert (req["scheduled_s"] <= req["first_token_s"]).all()
    assert (req["first_token_s"] <= req["finish_s"]).all()
    assert (req["finish_s"] <= res.raw.sim_end_s + 1e-9).all()
    for _, g in steps.groupby("instance"):  # one batch at a time per instance
        g = g.sort_values("start_s", kind="stable")
        end = (g["start_s"] + g["duration_s"]).to_numpy()
        assert (g["start_s"].to_numpy()[1:] >= end[:-1] - 1e-9).all()
    assert (steps["kv_used_blocks"] <= steps["kv_total_blocks"]).all()
    cap = res.config.deployment.pools[0].scheduler.max_num_seqs
    assert cap is None or steps["batch_size"].max() <= cap


@pytest.mark.parametrize("name", NAMES)
def test_golden_time_series_busy_time_is_conserved_and_at_most_one(name):
    res = result(name)
    ts = res.time_series()
    interval = float(ts["time_s"].iloc[1] - ts["time_s"].iloc[0])
    assert ts["busy_fraction"].max() <= 1 + 1e-9
    assert ts["busy_fraction"].sum() * interval == pytest.approx(res.steps["duration_s"].sum())


@pytest.mark.parametrize("name", NAMES)
def test_golden_littles_law_holds(name):
    """L (time-average requests in the system, from the step log) = lambda W (from the records)."""
    res = result(name)
    s, steps = res.summary, res.steps
    in_system = ((steps["waiting"] + steps["running"]) * steps["duration_s"]).sum() / s[
        "duration_s"
    ]
    lam_w = s["request_throughput"] * s["e2el_ms_mean"] / 1e3
    assert in_system == pytest.approx(lam_w, rel=0.03)


@pytest.mark.parametrize("name", NAMES)
def test_golden_itl_from_steps_matches_request_timestamps(name):
    res = result(name)
    req = res.requests
    itls = metrics.request_itls(res.raw)
    assert [len(x) for x in itls] == (req["output_tokens"] - 1).tolist()
    if res.summary["preemptions"] == 0:  # without preemption the step log gives exact gaps
        sums = np.array([sum(x) for x in itls])
        assert np.allclose(sums, req["finish_s"] - req["first_token_s"], rtol=0, atol=1e-9)
        pooled = np.concatenate([x for x in itls if x]) * 1e3
        assert res.summary["itl_ms_mean"] == pytest.approx(pooled.mean(), rel=1e-9)
        assert res.summary["itl_ms_p99"] == pytest.approx(np.percentile(pooled, 99), rel=1e-9)


def test_golden_closed_loop_never_exceeds_concurrency():
    res = result("closed_loop_preempt.v3")  # versioned 2026-12-03, v3 (tests/golden/retired)
    bench = res.benchmark(detailed=False)
    assert bench["max_concurrent_requests"] <= res.config.workload.clients.concurrency
    assert res.summary["preemptions"] > 0  # the config is sized so that KV runs out
