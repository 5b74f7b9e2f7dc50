"""experiments/e2e_validation/host_bound.py: the per-request host-time bound the e2e README
quotes (an executor emits at most one token per sequence per step, so b <= 1 / its tok/s)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def hb():
    sys.path.insert(0, str(ROOT / "experiments" / "e2e_validation"))
    try:
        import host_bound
    finally:
        sys.path.pop(0)
    return host_bound


def _rows(hb):
    rows = hb.score.read_rows(ROOT / "experiments" / "e2e_validation" / "measurements.csv")
    return [r for r in rows if r["source"] in hb.SOURCES and r["scenario"] == "offline"]


def test_one_executor_per_tp_group_and_one_per_attention_dp_rank(hb):
    tp8 = {"dp_attn": "1", "gpus": "8", "value": "100"}
    dep8 = {"dp_attn": "8", "gpus": "8", "value": "100"}
    assert hb.executors(tp8) == 1 and hb.per_executor_tok_s(tp8) == 800.0
    assert hb.executors(dep8) == 8 and hb.per_executor_tok_s(dep8) == 100.0


def test_tightest_bounds_are_the_fastest_published_executors(hb, capsys):
    tight = hb.bound_table(_rows(hb))
    capsys.readouterr()
    # Llama-3.1-8B H100 128/128 (28,312 tok/s) and GPT-OSS-20B B200 1000/1000 (53,812 tok/s)
    assert tight["trtllm_perf_overview_v1.0"] == pytest.approx(1e6 / 28312)
    assert tight["trtllm_perf_overview_2026"] == pytest.approx(1e6 / 53812)
    # GPT-OSS-20B on H200 (same model, release and lengths) would need ~4x the B200 bound
    h200 = next(r for r in _rows(hb) if r["row"] == "38")
    assert 1e6 / hb.per_executor_tok_s(h200) > 3.5 * tight["trtllm_perf_overview_2026"]
