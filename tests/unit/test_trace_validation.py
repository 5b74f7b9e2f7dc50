"""Every trace column checked cell by cell (workload/traces.py): the first bad cell is named by its
file line; values past int64 or not finite are refused; out-of-order rows are sorted with a note."""

from __future__ import annotations

import json

import pytest

from servesim.specs.common import SpecError
from servesim.workload.traces import frame_stats, load_trace

I64_MAX = 2**63 - 1


def _csv(tmp_path, *rows, header="arrival,prompt_tokens,output_tokens"):
    p = tmp_path / "t.csv"
    p.write_text("\n".join([header, *rows]) + "\n")
    return p


def _jsonl(tmp_path, *records, name="t.jsonl"):
    p = tmp_path / name
    p.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return p


@pytest.mark.parametrize(
    ("cell", "ok"),
    [("5", True), ("5.0", True), (str(I64_MAX), True), (str(2**63), False), ("1e30", False),
     ("inf", False), ("nan", False), ("-1", False), ("2.5", False), ("abc", False), ("", False)],
)  # fmt: skip
def test_csv_token_cells(tmp_path, cell, ok):
    p = _csv(tmp_path, "0,10,5", f"1,{cell},5")
    if ok:
        assert int(load_trace(p)["prompt_tokens"].iloc[1]) == int(float(cell) if "." in cell
                                                                 else int(cell))  # fmt: skip
    else:
        with pytest.raises(SpecError, match="line 3, column prompt_tokens"):
            load_trace(p)


def test_jsonl_cells_of_the_wrong_type_name_their_line(tmp_path):
    good = {"arrival": 0, "prompt_tokens": 10, "output_tokens": 5}
    for bad in (True, [1], {"a": 1}, None, "x", 2**63, 1e300):
        p = _jsonl(tmp_path, good, {**good, "prompt_tokens": bad})
        with pytest.raises(SpecError, match="line 2, column prompt_tokens"):
            load_trace(p)


def test_infinite_timestamps_are_refused_and_disorder_is_sorted(tmp_path):
    with pytest.raises(SpecError, match="line 3, column arrival.*finite"):
        load_trace(_csv(tmp_path, "0,10,5", "inf,10,5"))
    df = load_trace(_csv(tmp_path, "5,10,5", "0,11,5", "2,12,5"))
    assert df["prompt_tokens"].tolist() == [11, 12, 10]
    assert df["arrival_s"].tolist() == [0.0, 2.0, 5.0]
    assert any("sorted" in n for n in df.attrs["notes"])


@pytest.mark.parametrize("ids", [["a"], [None], [[1]], [True], [2**63], "1 2", 5])
def test_mooncake_hash_ids_must_be_lists_of_int64(tmp_path, ids):
    ok = {"timestamp": 0, "input_length": 100, "output_length": 5, "hash_ids": [1, 2]}
    p = _jsonl(tmp_path, ok, {**ok, "timestamp": 1, "hash_ids": ids})
    with pytest.raises(SpecError, match="line 2, key hash_ids"):
        load_trace(p, "mooncake")


def test_mooncake_hash_ids_at_the_int64_bounds_are_kept(tmp_path):
    rec = {
        "timestamp": 0,
        "input_length": 1024,
        "output_length": 5,
        "hash_ids": [-(2**63), I64_MAX],
    }
    assert load_trace(_jsonl(tmp_path, rec), "mooncake")["prefix_hashes"][0] == (-(2**63), I64_MAX)


@pytest.mark.parametrize(("cell", "line"), [("1 2 x", 3), ("1.5", 3), ("0x10", 3)])
def test_csv_prefix_ids_must_be_integers(tmp_path, cell, line):
    header = "arrival,prompt_tokens,output_tokens,prefix_hashes"
    p = _csv(tmp_path, "0,10,5,1 2", f"1,10,5,{cell}", header=header)
    with pytest.raises(SpecError, match=f"line {line}, column prefix_hashes"):
        load_trace(p)
    assert load_trace(_csv(tmp_path, "0,10,5,1;2 3", header=header))["prefix_hashes"][0] == (
        1,
        2,
        3,
    )


def test_stats_of_huge_counts_do_not_wrap(tmp_path):
    df = load_trace(_csv(tmp_path, f"0,{I64_MAX},5", f"1,{I64_MAX},5"))
    st = frame_stats(df)
    assert st["input_tokens_per_s"] == pytest.approx(2 * float(I64_MAX))
    assert st["input_mean"] > 0


def test_csv_single_prefix_ids_with_blanks_are_ids_not_floats(tmp_path):
    header = "arrival,prompt_tokens,output_tokens,prefix_hashes"
    df = load_trace(_csv(tmp_path, "0,10,5,7", "1,10,5,", "2,10,5,9", header=header))
    assert list(df["prefix_hashes"]) == [(7,), (), (9,)]
