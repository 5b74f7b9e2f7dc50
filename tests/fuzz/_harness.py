"""Runs one CLI invocation in-process with a time limit and checks the robustness contract:

- exit 2 with exactly one ``error: ...`` line on stderr (warnings may precede it), or
- exit 0 and, where a run wrote ``--out``, a summary whose numbers are finite and conserved
  (completed + failed = num_requests; token totals equal the sums over requests.parquet);
- never a traceback, never past the time limit, never a file written outside the case's
  working folder (where every input and output of a case lives).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from servesim.cli import main

TIME_LIMIT_S = 20  # per case; the slowest corpus case takes about 2 s alone


class CaseTimeout(Exception):
    pass


@dataclass
class Outcome:
    code: int
    out: str
    err: str


def _alarm(_sig, _frame):
    raise CaseTimeout


def invoke(argv: list[str], cwd: Path, limit_s: int = TIME_LIMIT_S) -> Outcome:
    """``servesim ARGV`` in ``cwd``; a case past ``limit_s`` raises CaseTimeout."""
    out, err = io.StringIO(), io.StringIO()
    old_cwd = os.getcwd()
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(limit_s)
    code = 0
    try:
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(argv)
            except SystemExit as exc:
                code = int(exc.code or 0)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        os.chdir(old_cwd)
    return Outcome(code, out.getvalue(), err.getvalue())


def snapshot(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def check(outcome: Outcome, expect: str = "either", out_dir: Path | None = None) -> None:
    """Assert the contract; ``expect`` is "error", "ok" or "either"."""
    err = outcome.err
    assert "Traceback" not in err and "Traceback" not in outcome.out, err[-2000:]
    assert outcome.code in (0, 2), f"exit {outcome.code}: {err[-2000:]}"
    if outcome.code == 2:
        assert expect in ("error", "either"), f"unexpected error: {err}"
        lines = err.strip().splitlines()
        errors = [ln for ln in lines if ln.startswith("error: ")]
        assert len(errors) == 1 and lines[-1] == errors[0], err[-2000:]
        assert len(errors[0]) < 600, f"error line of {len(errors[0])} characters"
        return
    assert expect in ("ok", "either"), f"expected an error, got exit 0: {outcome.out[-500:]}"
    if out_dir is not None and (out_dir / "summary.json").is_file():
        check_run_dir(out_dir)


def check_run_dir(d: Path) -> None:
    """A finished run directory: finite summary numbers, requests conserved, tokens add up."""
    text = (d / "summary.json").read_text()
    summary = json.loads(text, parse_constant=lambda c: float(c))
    for key, value in summary.items():
        if isinstance(value, float):
            assert math.isfinite(value), f"summary {key} = {value}"
    assert summary["completed"] + summary["failed"] == summary["num_requests"]
    reasons = sum(v for k, v in summary.items() if k.startswith("failed_"))
    assert reasons <= summary["failed"]
    req = pd.read_parquet(d / "requests.parquet")
    assert len(req) == summary["completed"]
    assert int(req["prompt_tokens"].sum()) == summary["total_input_tokens"]
    assert int(req["output_tokens"].sum()) == summary["total_output_tokens"]
    for col in ("arrival_s", "first_token_s", "finish_s"):
        assert req[col].map(math.isfinite).all(), col
    assert (req["finish_s"] >= req["first_token_s"]).all()
    assert (req["first_token_s"] >= req["arrival_s"]).all()
    mbu = summary.get("mbu")
    if isinstance(mbu, float):
        assert 0.0 <= mbu <= 1.0 + 1e-9, f"mbu {mbu}"


def run_case(tmp: Path, files: dict[str, str | bytes], argv: list[str], expect: str) -> Outcome:
    """Write ``files`` into ``tmp/work``, run ``argv`` there (``{out}`` = work/out), check the
    contract, and that nothing new appeared outside ``work``."""
    sandbox = tmp / "sandbox"
    work = sandbox / "work"
    work.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        p = work / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content, encoding="utf-8")
    before = snapshot(sandbox)
    out_dir = work / "out"
    argv = [a.replace("{out}", str(out_dir)).replace("{work}", str(work)) for a in argv]
    outcome = invoke(argv, work)
    check(outcome, expect, out_dir)
    escaped = [p for p in snapshot(sandbox) - before if work not in p.parents]
    assert not escaped, f"written outside the case folder: {escaped}"
    return outcome
