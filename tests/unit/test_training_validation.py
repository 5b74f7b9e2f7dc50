"""Re-score servesim.train on the published training measurements (experiments/training_validation)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCORE = Path(__file__).resolve().parents[2] / "experiments" / "training_validation" / "score.py"


def _score():
    spec = importlib.util.spec_from_file_location("training_score", SCORE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_training_throughput_against_published_runs():
    mod = _score()
    rows = mod.run()
    s = mod.summary(rows)
    assert len(s["per_source"]) >= 5
    assert all(n >= 3 for n, _ in s["per_source"].values())
    assert s["median_abs_error"] <= 0.15
    assert max(e for _, e in s["per_source"].values()) <= 0.30
    ok, total = s["fit_agreement"]
    assert ok == total  # the memory check agrees with which layouts ran and which ran out
    assert any(r["ran"] == "no" for r in rows)
    assert s["memory_rows"] >= 10 and s["memory_median_abs_error"] <= 0.10
