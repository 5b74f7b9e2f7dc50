"""The pandas-free trace reader (workload/fasttrace.py) against load_trace (pandas): the same
columns to the bit, the same notes, and the same errors (it hands anything unusual to pandas)."""

from __future__ import annotations

import datetime as dt
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servesim.specs.common import SpecError
from servesim.workload import fasttrace
from servesim.workload.fasttrace import TraceColumns, trace_columns
from servesim.workload.traces import load_trace

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = [ROOT / "traces" / "azure_conv_sample.csv", ROOT / "traces" / "azure_code_sample.csv"]
HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"


def _same(cols: TraceColumns, df) -> None:
    assert list(cols.columns) == list(df.columns)
    for k in df.columns:
        if k == "prefix_hashes":
            assert cols[k] == df[k].tolist()
        else:
            want = df[k].to_numpy()
            assert cols[k].dtype == want.dtype, k
            # bit equality (NaN == NaN for the empty TTFT column)
            assert cols[k].tobytes() == want.tobytes(), k
    assert cols.attrs == dict(df.attrs)


def _fast(p: Path, **opts) -> TraceColumns:
    """The fast reader's own result (fails if it handed the file to pandas)."""
    raw = fasttrace._read_azure_plain(p)
    assert raw is not None, "fast reader declined"
    out = fasttrace._finish(raw, opts)
    assert out is not None
    return out


def _write(tmp_path: Path, body: str, name: str = "t.csv", newline: str = "\n") -> Path:
    p = tmp_path / name
    p.write_bytes((HEADER + body).replace("\n", newline).encode())
    return p


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_bundled_samples_bit_identical(path):
    _same(_fast(path), load_trace(path))
    _same(trace_columns(path, "azure"), load_trace(path, "azure"))


OPTIONS = [
    {"speedup": 2.5},
    {"speedup": 0.3, "max_input": 500, "max_output": 20},
    {"start_s": 10.0, "duration_s": 60.0},
    {"start_s": 30.0},
    {"sample": 0.37, "seed": 7},
    {"max_requests": 100},
]


@pytest.mark.parametrize("opts", OPTIONS, ids=str)
def test_options_bit_identical(opts):
    path = SAMPLES[0]
    _same(_fast(path, **opts), load_trace(path, **opts))
    _same(trace_columns(path, **opts), load_trace(path, **opts))


@pytest.mark.parametrize(
    "name", ["AzureLLMInferenceTrace_conv.csv", "AzureLLMInferenceTrace_code.csv"]
)
def test_public_azure_2023_traces_bit_identical(shared_data, name):
    path = shared_data / "traces" / name
    if not path.is_file():
        pytest.skip(f"{path} not present")
    _same(_fast(path), load_trace(path))


def test_crafted_edge_cases_bit_identical(tmp_path, caplog):
    body = (
        "2023-11-16 18:15:46.6805900,10,0\n"  # 7 fraction digits; 0 output -> 1
        "2023-11-16 18:15:46.123456789,0,5\n"  # 9 digits; 0 prompt -> 1; earlier: sorted
        "2023-11-16T18:15:47,007,3\n"  # T separator, no fraction, leading zero
        "2024-02-29 23:59:59.5,123456789012345678,1\n"  # leap day, 18-digit count
        "2023-11-16 18:15:46.6805900,4,4\n"  # a tie keeps file order
    )
    for newline in ("\n", "\r\n"):
        p = _write(tmp_path, body, newline=newline)
        df = load_trace(p)
        assert df.attrs["notes"]  # the case exercises the notes
        _same(_fast(p), df)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="servesim.workload"):
            _same(trace_columns(p), df)
        assert [r.getMessage() for r in caplog.records] == [f"{p}: {n}" for n in df.attrs["notes"]]


UNUSUAL = [
    "2024-05-10 00:00:00.123+00:00,5,5\n",  # a time zone
    '"2023-11-16 18:15:46.5",5,5\n',  # quoted
    "2023-11-16 18:15:46.5, 5,5\n",  # a space pandas skips
    "2023-11-16 18:15:46.5,5,5\n\n2023-11-16 18:15:47.5,5,5\n",  # a blank line pandas skips
    "2023-11-16 18:15:46.1234567891,5,5\n",  # 10 fraction digits
    "2023-02-29 18:15:46,5,5\n",  # no such day
    "2023-11-16 24:00:00,5,5\n",
    "2023-11-16 18:15:46,5.0,5\n",  # a float count
    "2023-11-16 18:15:46,-5,5\n",  # negative
    "2023-11-16 18:15:46,5,\n",  # empty cell
    "2023-11-16 18:15:46,5,5,9\n",  # a long row
    "2023-11-16 18:15:46,99999999999999999999,5\n",  # past int64
    "not a time,5,5\n",
]


@pytest.mark.parametrize("body", UNUSUAL, ids=range(len(UNUSUAL)))
def test_unusual_files_go_to_pandas_with_its_result_or_error(tmp_path, body):
    p = _write(tmp_path, body)
    assert fasttrace._read_azure_plain(p) is None
    try:
        df = load_trace(p, "azure")
    except SpecError as exc:
        with pytest.raises(SpecError) as got:
            trace_columns(p, "azure")
        assert str(got.value) == str(exc)
    else:
        _same(trace_columns(p, "azure"), df)


def test_header_only_and_bad_options_report_as_pandas(tmp_path):
    p = _write(tmp_path, "")
    with pytest.raises(SpecError, match="no requests"):
        trace_columns(p)
    for opts in ({"speedup": 0}, {"start_s": 1e6}, {"max_input": 10.5}):
        try:
            want = load_trace(SAMPLES[0], **opts)
        except (SpecError, TypeError) as exc:
            with pytest.raises(type(exc)) as got:
                trace_columns(SAMPLES[0], **opts)
            assert str(got.value) == str(exc)
        else:
            assert len(trace_columns(SAMPLES[0], **opts)) == len(want)


def test_take_slices_and_masks_every_column():
    cols = trace_columns(SAMPLES[0])
    part = cols.take(slice(3, 9))
    assert part["prefix_hashes"] == cols["prefix_hashes"][3:9]
    assert part["arrival_s"].tolist() == cols["arrival_s"][3:9].tolist()
    mask = cols["prompt_tokens"] > 1000
    sel = cols.take(mask)
    assert len(sel) == int(mask.sum()) == len(sel["prefix_hashes"])


_T0 = dt.datetime(2023, 1, 1)


@st.composite
def _rows(draw):
    n = draw(st.integers(1, 40))
    rows = []
    for _ in range(n):
        t = _T0 + dt.timedelta(seconds=draw(st.integers(0, 400 * 86400)))
        digits = draw(st.integers(0, 9))
        frac = (
            ""
            if digits == 0
            else "."
            + "".join(
                draw(st.lists(st.sampled_from("0123456789"), min_size=digits, max_size=digits))
            )
        )
        sep = draw(st.sampled_from([" ", "T"]))
        rows.append(
            f"{t:%Y-%m-%d}{sep}{t:%H:%M:%S}{frac},{draw(st.integers(0, 10**6))},"
            f"{draw(st.integers(0, 5000))}\n"
        )
    return "".join(rows)


@settings(max_examples=60, deadline=None)
@given(body=_rows(), speedup=st.sampled_from([1.0, 3.0, 0.7]))
def test_random_azure_files_bit_identical(tmp_path_factory, body, speedup):
    p = _write(tmp_path_factory.mktemp("fx"), body)
    _same(_fast(p, speedup=speedup), load_trace(p, speedup=speedup))


def test_print_only_run_does_not_import_pandas():
    """The default `servesim run` (print only) reads its trace and builds its summary without
    pandas (importing it costs ~0.4 CPU-s); `--out` and the studies still use it."""
    code = (
        "import sys\n"
        "from servesim.cli import main\n"
        "sys.argv = ['servesim', 'run', '--num-requests', '30', '-q']\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "print('pandas' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "False", out.stderr
