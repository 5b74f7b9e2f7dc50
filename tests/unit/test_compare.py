"""compare(): matching configs across result kinds, ratios, accuracy tables, rendering."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner
from servesim.compare import canonical_metric, compare, format_comparison, load_results

from servesim.cli import cli
from servesim.specs import SpecError


def write_bench(d, prefix, tp, isl, osl, conc, thr, ttft, simulated=True):
    d.mkdir(parents=True, exist_ok=True)
    data = {
        "backend": "servesim" if simulated else "vllm",
        "output_throughput": thr,
        "mean_ttft_ms": ttft,
        "median_tpot_ms": 10.0,
        "p99_ttft_ms": ttft * 2,
    }
    if simulated:
        data["servesim"] = {"simulated": True}
    (d / f"{prefix}_tp{tp}_isl{isl}_osl{osl}_conc{conc}.json").write_text(json.dumps(data))


def test_canonical_metric_summary_and_bench_names_agree():
    assert canonical_metric("ttft_ms_p99") == "p99_ttft_ms"
    assert canonical_metric("p99_ttft_ms") == "p99_ttft_ms"
    assert canonical_metric("tpot_ms_median") == "median_tpot_ms"
    assert canonical_metric("e2el_ms_p99_9") == "p99.9_e2el_ms"
    assert canonical_metric("ttft_mean_ms") == "mean_ttft_ms"
    assert canonical_metric("duration_s") == "duration"


def test_compare_two_bench_dirs_matches_file_keys_and_gives_ratio(tmp_path):
    for conc, thr in ((4, 100.0), (8, 180.0)):
        write_bench(tmp_path / "a", "old", 8, 1024, 1024, conc, thr, 50.0)
        write_bench(tmp_path / "b", "new", 8, 1024, 1024, conc, thr * 1.5, 40.0)
    write_bench(tmp_path / "b", "new", 8, 1024, 1024, 16, 1.0, 1.0)  # only in B: not matched
    df = compare(tmp_path / "a", tmp_path / "b")
    thr = df[df["metric"] == "output_throughput"]
    assert list(thr["conc"]) == [4, 8]
    assert thr["ratio"].tolist() == pytest.approx([1.5, 1.5])
    assert "error_pct" not in df


def test_compare_measured_csv_gives_error_pct_and_mape(tmp_path):
    pd.DataFrame(
        {
            "tp": [2.0, 2.0],
            "isl": [5000, 5000],
            "osl": [500, 500],
            "concurrency": [1, 5],
            "output_throughput_tok_s": [50.0, 200.0],
            "ttft_mean_ms": [400.0, 500.0],
        }
    ).to_csv(tmp_path / "measured.csv", index=False)
    write_bench(tmp_path / "sim", "sim", 2, 5000, 500, 1, 55.0, 380.0)
    write_bench(tmp_path / "sim", "sim", 2, 5000, 500, 5, 180.0, 500.0)
    df = compare(tmp_path / "measured.csv", tmp_path / "sim")
    thr = df[df["metric"] == "output_throughput"].reset_index(drop=True)
    assert thr["error_pct"].tolist() == pytest.approx([10.0, -10.0])
    assert df.attrs["mape"]["output_throughput"] == pytest.approx(10.0)
    assert df.attrs["mape"]["mean_ttft_ms"] == pytest.approx(2.5)
    text = format_comparison(df, "table")
    assert "MAPE" in text and "+10.0%" in text


def test_compare_sweep_table_matches_on_input_columns(tmp_path):
    from servesim.sweep import sweep

    def runner(base, ov, seed):
        return {"output_throughput": ov["workload.clients.concurrency"] * 10.0, "ttft_ms_p99": 5.0}

    spec = {
        "base": {"x": 1},
        "grid": {"workload.clients.concurrency": [4, 8]},
        "metrics": ["output_throughput", "ttft_ms_p99"],
    }
    sweep(spec, jobs=1, out=tmp_path / "sw", runner=runner)
    for conc in (4, 8):
        write_bench(tmp_path / "b", "x", 1, 100, 100, conc, conc * 20.0, 5.0)
    rs = load_results(tmp_path / "sw")
    assert "conc" in rs.keys and "p99_ttft_ms" in rs.table
    df = compare(tmp_path / "sw", tmp_path / "b")
    assert df[df["metric"] == "output_throughput"]["ratio"].tolist() == pytest.approx([2.0, 2.0])


def test_compare_no_common_config_raises_specerror(tmp_path):
    write_bench(tmp_path / "a", "p", 1, 1, 1, 1, 1.0, 1.0)
    write_bench(tmp_path / "a", "p", 1, 1, 1, 2, 1.0, 1.0)
    write_bench(tmp_path / "b", "p", 2, 1, 1, 1, 1.0, 1.0)
    with pytest.raises(SpecError, match="no config"):
        compare(tmp_path / "a", tmp_path / "b")


def test_compare_cli_markdown_has_table_rows(tmp_path):
    write_bench(tmp_path / "a", "p", 8, 1024, 1024, 4, 100.0, 50.0)
    write_bench(tmp_path / "b", "p", 8, 1024, 1024, 4, 120.0, 50.0)
    res = CliRunner().invoke(
        cli,
        [
            "compare",
            str(tmp_path / "a"),
            str(tmp_path / "b"),
            "--format",
            "markdown",
            "--metrics",
            "output_throughput",
        ],
    )
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("|")]
    assert len(lines) == 3 and "1.200" in lines[2]


def test_compare_real_nim_measurements_load_as_measured(shared_data):
    rs = load_results(shared_data / "measured" / "e2e_nim_h100_tp2.csv")
    assert rs.measured and {"tp", "isl", "osl", "conc"} <= set(rs.keys)
    assert "output_throughput" in rs.table and "mean_ttft_ms" in rs.table


def test_compare_averages_over_columns_only_one_side_has(tmp_path):
    from servesim.sweep import sweep

    def runner(base, ov, seed):
        return {"output_throughput": 100.0 + seed}

    spec = {
        "base": {"x": 1},
        "grid": {"workload.clients.concurrency": [4]},
        "seeds": [0, 2],
        "metrics": ["output_throughput"],
    }
    sweep(spec, jobs=1, out=tmp_path / "sw", runner=runner)
    write_bench(tmp_path / "b", "x", 1, 100, 100, 4, 202.0, 5.0)
    df = compare(tmp_path / "sw", tmp_path / "b", ["output_throughput"])
    assert df["a"].tolist() == [101.0] and df["ratio"].tolist() == pytest.approx([2.0])
    assert df.attrs["averaged_over"] == ["seed"]
    assert "averaged over seed" in format_comparison(df)
