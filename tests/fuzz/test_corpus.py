"""Replays every corpus case (tests/fuzz/_corpus.py) through the CLI and checks the contract of
tests/fuzz/_harness.py, plus the cases that need a finished run directory first."""

from __future__ import annotations

import shutil

import pytest
from _corpus import BASE, CASES, Case
from _harness import check_run_dir, invoke, run_case


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, id=c.name, marks=[pytest.mark.xfail(reason=c.xfail)] if c.xfail else [])
     for c in CASES],
)  # fmt: skip
def test_corpus_case(case: Case, tmp_path):
    outcome = run_case(tmp_path / "a" / "b", case.files, case.argv, case.expect)
    if case.says:
        assert case.says in outcome.err + outcome.out, outcome.err or outcome.out[-800:]


@pytest.fixture
def run_dir(tmp_path):
    (tmp_path / "base.yaml").write_text(BASE)
    outcome = invoke(["run", "base.yaml", "--out", "runs/a"], tmp_path)
    assert outcome.code == 0, outcome.err
    check_run_dir(tmp_path / "runs" / "a")
    return tmp_path / "runs" / "a"


def test_compare_does_not_read_tmp_litter_as_a_run(run_dir):
    # what a `run --out` killed between writing and renaming leaves behind
    shutil.copytree(run_dir, run_dir.parent / ".b.tmp-k1ll3d")
    outcome = invoke(["compare", "runs", "runs"], run_dir.parent.parent)
    assert outcome.code == 0, outcome.err
    # one run on each side, matched by its content (compare pairs by model/lengths/rate/tp)
    assert "B/A" in outcome.out and "tmp" not in outcome.out and "k1ll3d" not in outcome.out


def test_cost_on_a_run_whose_summary_is_cut_short(run_dir):
    text = (run_dir / "summary.json").read_text()
    (run_dir / "summary.json").write_text(text[: len(text) // 2])
    outcome = invoke(["cost", str(run_dir)], run_dir)
    assert outcome.code == 2 and outcome.err.startswith("error: ") and "summary.json" in outcome.err


def test_run_dir_has_normal_permissions(run_dir):
    import os

    umask = os.umask(0o022)
    os.umask(umask)
    assert run_dir.stat().st_mode & 0o777 == 0o777 & ~umask
    for f in run_dir.iterdir():
        assert f.stat().st_mode & 0o777 == 0o666 & ~umask, f
