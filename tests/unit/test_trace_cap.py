"""A trace with a request cap has only the rows it needs parsed (traces.load_trace max_requests),
with the same requests as reading it whole."""

from __future__ import annotations

import pytest

from servesim.specs.common import SpecError
from servesim.workload import traces
from servesim.workload.traces import load_trace


@pytest.fixture(autouse=True)
def _small_files_too(monkeypatch):
    monkeypatch.setattr(traces, "PREFIX_READ_MIN_BYTES", 0)  # these files are tiny


ROWS = [(0.0, 10, 5), (0.5, 20, 6), (1.0, 30, 7), (1.5, 40, 8), (2.0, 50, 9)]


def _csv(path, rows, extra=""):
    path.write_text(
        "arrival,prompt_tokens,output_tokens\n"
        + "".join(f"{a},{p},{o}\n" for a, p, o in rows)
        + extra
    )
    return path


def test_capped_read_equals_the_head_of_the_whole_read(tmp_path):
    p = _csv(tmp_path / "t.csv", ROWS)
    whole = load_trace(p, "csv")
    head = load_trace(p, "csv", max_requests=3)
    assert len(head) == 3
    assert head.equals(whole.iloc[:3])


def test_rows_past_the_cap_are_not_parsed(tmp_path):
    p = _csv(tmp_path / "t.csv", ROWS, extra="3.0,not-a-number,1\n")
    with pytest.raises(SpecError, match="prompt_tokens"):
        load_trace(p, "csv")  # the whole file: the bad cell is found
    assert len(load_trace(p, "csv", max_requests=4)) == 4  # never looked at


def test_a_later_row_arriving_earlier_makes_the_whole_file_read(tmp_path):
    rows = [*ROWS[:3], (0.2, 99, 9), *ROWS[3:]]  # row 4 arrives before row 3
    p = _csv(tmp_path / "t.csv", rows)
    head = load_trace(p, "csv", max_requests=3)
    assert head["prompt_tokens"].tolist()[:3] == [10, 99, 20]  # the three earliest
    assert head.iloc[:3].equals(load_trace(p, "csv").iloc[:3])


def test_window_options_read_the_whole_file(tmp_path):
    p = _csv(tmp_path / "t.csv", ROWS)
    assert len(load_trace(p, "csv", start_s=1.0, max_requests=1)) == 3


def test_a_small_file_is_read_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(traces, "PREFIX_READ_MIN_BYTES", 1 << 20)
    p = _csv(tmp_path / "t.csv", ROWS)
    assert len(load_trace(p, "csv", max_requests=2)) == 5
