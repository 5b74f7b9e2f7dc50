"""Trace readers, options, statistics, the public-trace cache and `servesim trace`."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from servesim.specs.common import SpecError
from servesim.workload import traces
from servesim.workload.traces import PUBLIC_TRACES, fetch_trace, load_trace, trace_stats

REPO = Path(__file__).resolve().parents[2]
CONV_SAMPLE = REPO / "traces" / "azure_conv_sample.csv"
CODE_SAMPLE = REPO / "traces" / "azure_code_sample.csv"
MOONCAKE_SAMPLE = REPO / "traces" / "mooncake_sample.jsonl"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


# -- real traces ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "rows", "rate", "cv_lo", "cv_hi"),
    [("conv", 19366, 5.53, 1.0, 1.2), ("code", 8819, 2.57, 5, 20)],
)
def test_load_trace_azure_2023_real_stats_sensible(shared_data, name, rows, rate, cv_lo, cv_hi):
    s = trace_stats(shared_data / "traces" / f"AzureLLMInferenceTrace_{name}.csv")
    assert s["format"] == "azure"
    assert s["requests"] == rows
    assert 3000 < s["duration_s"] < 3600  # one hour-long sample
    assert s["rate_rps"] == pytest.approx(rate, rel=0.01)
    assert cv_lo < s["interarrival_cv"] < cv_hi
    assert s["input_p50"] < s["input_p90"] < s["input_p99"] <= s["input_max"]
    assert 1 <= s["output_p50"] < s["output_p99"]
    assert s["notes"] == []


def test_load_trace_azure_conv_real_columns_and_order(shared_data):
    df = load_trace(shared_data / "traces" / "AzureLLMInferenceTrace_conv.csv")
    assert list(df.columns) == list(traces.COLUMNS)
    arr = df["arrival_s"].to_numpy()
    assert arr[0] == 0.0 and np.all(np.diff(arr) >= 0)
    # 2023-11-16 18:15:46.6805900 -> 18:15:50.9951690: 100 ns resolution kept
    assert arr[1] == pytest.approx(4.314579, abs=1e-7)
    assert df["prompt_tokens"].iloc[0] == 374 and df["output_tokens"].iloc[0] == 44


def test_bundled_samples_match_real_statistics(shared_data):
    """The synthetic samples reproduce the real traces' rate and length percentiles loosely."""
    for sample, real in ((CONV_SAMPLE, "conv"), (CODE_SAMPLE, "code")):
        a = trace_stats(sample)
        b = trace_stats(shared_data / "traces" / f"AzureLLMInferenceTrace_{real}.csv")
        assert a["rate_rps"] == pytest.approx(b["rate_rps"], rel=0.1)
        for key in ("input_mean", "input_p50", "output_mean", "output_p50", "output_p90"):
            assert a[key] == pytest.approx(b[key], rel=0.15), key


# -- formats --------------------------------------------------------------------------------------


def test_load_trace_samples_infer_format():
    assert traces.infer_format(CONV_SAMPLE) == "azure"
    assert traces.infer_format(MOONCAKE_SAMPLE) == "mooncake"
    assert len(load_trace(CONV_SAMPLE)) >= 2000
    assert load_trace(MOONCAKE_SAMPLE).attrs["hash_block_tokens"] == 512


def test_load_trace_azure_2024_timezone_timestamps_parse(tmp_path):
    p = _write(
        tmp_path,
        "w.csv",
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2024-05-10 00:00:00.006143+00:00,10,2\n2024-05-10 00:00:01.506143+00:00,20,3\n",
    )
    df = load_trace(p)
    assert df["arrival_s"].tolist() == pytest.approx([0.0, 1.5])


def test_load_trace_mooncake_ms_and_hashes(tmp_path):
    p = _write(
        tmp_path,
        "m.jsonl",
        json.dumps(
            {"timestamp": 27482, "input_length": 6955, "output_length": 52, "hash_ids": [46, 47]}
        )
        + "\n"
        + json.dumps(
            {"timestamp": 30535, "input_length": 600, "output_length": 0, "hash_ids": [46, 2366]}
        )
        + "\n",
    )
    df = load_trace(p)
    assert df["arrival_s"].tolist() == pytest.approx([0.0, 3.053])
    assert df["prefix_hashes"].tolist() == [(46, 47), (46, 2366)]
    assert df["output_tokens"].tolist() == [52, 1]  # 0 -> 1
    assert "counted as 1" in df.attrs["notes"][0]


def test_load_trace_burstgpt_drops_failed_rows(tmp_path):
    p = _write(
        tmp_path,
        "b.csv",
        "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
        "5,ChatGPT,472,18,490,Conversation log\n45,ChatGPT,1087,0,1087,Conversation log\n"
        "47,GPT-4,417,276,693,API log\n",
    )
    df = load_trace(p)
    assert traces.infer_format(p) == "burstgpt"
    assert df["arrival_s"].tolist() == [0.0, 42.0]
    assert df["prompt_tokens"].tolist() == [472, 417]
    assert df.attrs["notes"] == ["dropped 1 failed requests (0 response tokens)"]


def test_load_trace_generic_csv_column_mapping(tmp_path):
    p = _write(tmp_path, "g.csv", "t_ms,in,out,conv,blocks\n1000,100,5,7,1 2 3\n1500,200,6,7,1 2\n")
    df = load_trace(
        p,
        "csv",
        columns={
            "arrival": "t_ms",
            "prompt_tokens": "in",
            "output_tokens": "out",
            "session_id": "conv",
            "prefix_hashes": "blocks",
        },
        time_unit="ms",
    )
    assert df["arrival_s"].tolist() == pytest.approx([0.0, 0.5])
    assert df["session_id"].tolist() == [7, 7]
    assert df["prefix_hashes"].tolist() == [(1, 2, 3), (1, 2)]


def test_load_trace_generic_jsonl_default_columns(tmp_path):
    p = _write(
        tmp_path,
        "g.jsonl",
        '{"arrival": 2.0, "prompt_tokens": 9, "output_tokens": 3}\n'
        '{"arrival": 1.0, "prompt_tokens": 8, "output_tokens": 4}\n',
    )
    df = load_trace(p)
    assert df["prompt_tokens"].tolist() == [8, 9]  # sorted by arrival
    assert "sorted" in df.attrs["notes"][0]


# -- options --------------------------------------------------------------------------------------


def test_load_trace_speedup_two_halves_duration():
    base = load_trace(CONV_SAMPLE)
    fast = load_trace(CONV_SAMPLE, speedup=2.0)
    assert fast["arrival_s"].iloc[-1] == pytest.approx(base["arrival_s"].iloc[-1] / 2)
    assert np.allclose(np.diff(fast["arrival_s"]), np.diff(base["arrival_s"]) / 2)  # bursts kept
    assert fast["prompt_tokens"].equals(base["prompt_tokens"])


def test_load_trace_window_keeps_only_window():
    base = load_trace(CONV_SAMPLE)
    win = load_trace(CONV_SAMPLE, start_s=100, duration_s=60)
    a = base["arrival_s"].to_numpy()
    assert len(win) == int(((a >= 100) & (a < 160)).sum())
    assert win["arrival_s"].iloc[0] == 0.0 and win["arrival_s"].iloc[-1] < 60


def test_load_trace_sample_seeded_fraction():
    a = load_trace(CONV_SAMPLE, sample=0.5, seed=3)
    b = load_trace(CONV_SAMPLE, sample=0.5, seed=3)
    c = load_trace(CONV_SAMPLE, sample=0.5, seed=4)
    assert a.equals(b) and not a.equals(c)
    assert 0.4 < len(a) / len(load_trace(CONV_SAMPLE)) < 0.6


def test_load_trace_clip_max_lengths_noted():
    df = load_trace(CONV_SAMPLE, max_input=2048, max_output=256)
    assert df["prompt_tokens"].max() == 2048 and df["output_tokens"].max() == 256
    assert any("clipped" in n for n in df.attrs["notes"])


def test_load_trace_empty_window_is_error():
    with pytest.raises(SpecError, match="window holds no requests"):
        load_trace(CONV_SAMPLE, start_s=1e6)


# -- bad files ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "where", "problem"),
    [
        ("e.csv", "", "", "no header and no requests"),
        ("h.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n", "", "no requests"),
        (
            "c.csv",
            "TIMESTAMP,ContextTokens\n2023-11-16 18:15:46.6,3\n",
            "header",
            "missing column GeneratedTokens",
        ),
        (
            "n.csv",
            "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6,3,4\n2023-11-16 18:15:47.6,-3,4\n",
            "line 3, column ContextTokens",
            "whole number",
        ),
        (
            "t.csv",
            "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6,3,4\nyesterday,3,4\n",
            "line 3, column TIMESTAMP",
            "date-time",
        ),
        (
            "f.csv",
            "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6,3,4\n2023-11-16 18:15:47.6,3,4,9,9\n",
            "",
            "malformed CSV",
        ),
        (
            "j.jsonl",
            '{"timestamp": 1, "input_length": 2, "output_length": 3}\n{"timestamp": 2, "input_length": \n',
            "line 2, column",
            "malformed JSON",
        ),
        ("k.jsonl", '{"timestamp": 1, "input_length": 2}\n', "key output_length", "missing"),
        ("z.jsonl", "", "", "no requests"),
    ],
)
def test_load_trace_corrupt_file_one_clear_error(tmp_path, name, text, where, problem):
    p = _write(tmp_path, name, text)
    with pytest.raises(SpecError) as err:
        load_trace(p, "mooncake" if name.endswith(".jsonl") else "azure")
    assert err.value.where == str(p)
    assert err.value.field.startswith(where)
    assert problem in str(err.value)


def test_load_trace_missing_file_error(tmp_path):
    with pytest.raises(SpecError, match="trace file not found"):
        load_trace(tmp_path / "nope.csv")


# -- public traces --------------------------------------------------------------------------------


def test_public_traces_registry_complete():
    assert set(PUBLIC_TRACES) == {
        "azure-conv-2023",
        "azure-code-2023",
        "azure-conv-2024",
        "azure-code-2024",
        "mooncake",
        "burstgpt",
    }
    for entry in PUBLIC_TRACES.values():
        assert set(entry) - {"sha256"} == {"format", "url", "description", "license"}
        assert entry["url"].startswith("https://")


def test_fetch_trace_cached_returns_without_network(tmp_path, monkeypatch, shared_data):
    import shutil

    def no_network(*a, **k):
        raise AssertionError("network used")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    cached = tmp_path / "AzureLLMInferenceTrace_conv.csv"
    shutil.copy(shared_data / "traces" / "AzureLLMInferenceTrace_conv.csv", cached)
    assert fetch_trace("azure-conv-2023", tmp_path) == cached  # its pinned sha256 matches


def test_fetch_trace_cached_file_with_wrong_checksum_is_fetched_again(tmp_path, monkeypatch):
    calls = []

    def no_network(*a, **k):
        calls.append(a)
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    (tmp_path / "AzureLLMInferenceTrace_conv.csv").write_text("TIMESTAMP,ContextTokens\n")
    with pytest.raises(SpecError, match="run it again to resume"):
        fetch_trace("azure-conv-2023", tmp_path)
    assert calls  # not trusted: its content does not match the pinned sha256


def test_fetch_resumes_a_partial_download_with_a_range_request(tmp_path, monkeypatch):
    import hashlib
    import io

    from servesim.workload.fetch import download

    body = b"0123456789" * 1000
    part = tmp_path / "t.csv.part"
    part.write_bytes(body[:4000])  # an earlier download stopped here
    seen = {}

    class Resp(io.BytesIO):
        status = 206
        headers = {"Content-Length": str(len(body) - 4000)}

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    def fake_urlopen(req, timeout=None):
        seen["range"] = req.get_header("Range")
        return Resp(body[4000:])

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    sha = hashlib.sha256(body).hexdigest()
    out = download("https://example.invalid/t.csv", tmp_path / "t.csv", sha, progress=False)
    assert seen["range"] == "bytes=4000-" and out.read_bytes() == body
    assert not part.exists()


def test_fetch_trace_env_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SERVESIM_CACHE", str(tmp_path))
    (tmp_path / "traces").mkdir()
    (tmp_path / "traces" / "conversation_trace.jsonl").write_text("{}\n")
    assert fetch_trace("mooncake") == tmp_path / "traces" / "conversation_trace.jsonl"


def test_fetch_trace_offline_clear_error_nothing_left(tmp_path, monkeypatch):
    monkeypatch.setitem(
        PUBLIC_TRACES,
        "burstgpt",
        {**PUBLIC_TRACES["burstgpt"], "url": "http://127.0.0.1:9/BurstGPT.csv"},
    )
    with pytest.raises(SpecError) as err:
        fetch_trace("burstgpt", tmp_path, timeout_s=2)
    msg = str(err.value)
    assert "cannot download burstgpt from http://127.0.0.1:9/BurstGPT.csv" in msg
    assert msg.endswith("download it by hand and pass the path")
    assert list(tmp_path.iterdir()) == []  # no partial file


def test_fetch_trace_unknown_name_lists_known():
    with pytest.raises(SpecError, match="azure-conv-2023"):
        fetch_trace("azure-2099")


# -- CLI ------------------------------------------------------------------------------------------


def test_trace_stats_cli_table_and_json():
    from servesim.cli import cli

    runner = CliRunner()
    res = runner.invoke(cli, ["trace", "stats", str(CONV_SAMPLE)])
    assert res.exit_code == 0 and "req/s" in res.output and "p99" in res.output
    res = runner.invoke(
        cli, ["trace", "stats", str(MOONCAKE_SAMPLE), "--format", "mooncake", "--json"]
    )
    assert res.exit_code == 0
    assert json.loads(res.output)["requests"] == 1000


def test_trace_cli_bad_file_exit_2(tmp_path):
    from servesim.cli import main

    p = _write(tmp_path, "e.csv", "")
    with pytest.raises(SystemExit) as exc:
        main(["trace", "stats", str(p)])
    assert exc.value.code == 2


def test_resolve_path_bundled_name_finds_the_sample():
    assert traces.resolve_path("azure_conv_sample").name == "azure_conv_sample.csv"


def test_resolve_path_public_name_not_fetched_says_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("SERVESIM_CACHE", str(tmp_path))
    with pytest.raises(SpecError, match="servesim trace fetch azure-conv-2023"):
        traces.resolve_path("azure-conv-2023")


def test_resolve_path_public_name_fetched_is_the_cached_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SERVESIM_CACHE", str(tmp_path))
    cached = tmp_path / "traces" / "AzureLLMInferenceTrace_conv.csv"
    cached.parent.mkdir()
    cached.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n")
    assert traces.resolve_path("azure-conv-2023") == cached
