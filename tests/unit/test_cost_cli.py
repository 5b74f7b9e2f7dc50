"""`servesim cost`: hardware mode, run directories, output formats, bad input -> exit 2."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from servesim.cli import cli, main
from servesim.specs.cost import load_providers

CONFIG = {
    "model": "llama-3.1-8b",
    "deployment": {
        "pools": [
            {"role": "colocated", "hardware": "h100-sxm", "instances": 2, "parallelism": {"tp": 1}}
        ]
    },
    "workload": {
        "arrivals": {"process": "poisson", "rate": 1.0},
        "lengths": {
            "input": {"dist": "fixed", "mean": 100},
            "output": {"dist": "fixed", "mean": 10},
        },
        "num_requests": 2,
    },
    "cost": {"pricing": "cloud", "provider": "aws"},
}


@pytest.fixture
def run_dir(tmp_path):
    """A finished-run folder with the files Result.to_dir writes (hand-made columns)."""
    d = tmp_path / "run"
    d.mkdir()
    (d / "config.yaml").write_text(yaml.safe_dump(CONFIG), encoding="utf-8")
    (d / "summary.json").write_text(json.dumps({"duration_s": 3600.0}), encoding="utf-8")
    steps = pd.DataFrame({"instance": [0, 1], "start_s": [0.0, 10.0], "duration_s": [600.0, 1200.0],
                          "flops": [1e17, 1e16], "bytes": [1e14, 1e15], "prefill_tokens": [1000, 0],
                          "decode_seqs": [0, 50]})  # fmt: skip
    steps.to_parquet(d / "steps.parquet", index=False)
    reqs = pd.DataFrame(
        {
            "prompt_tokens": np.array([1_000_000, 2_000_000]),
            "output_tokens": np.array([500_000, 500_000]),
        }
    )
    reqs.to_parquet(d / "requests.parquet", index=False)
    return d


def test_cost_cli_hardware_table_shows_prices_and_dates():
    res = CliRunner().invoke(
        cli, ["cost", "--hw", "h100-sxm", "--devices", "8", "--tokens-per-day", "1e8"]
    )
    assert res.exit_code == 0, res.output
    aws = load_providers()["aws"]["h100-sxm"]
    assert "aws" in res.output and aws.date in res.output and "sources:" in res.output


def test_cost_cli_run_dir_json_has_provider_rows(run_dir):
    res = CliRunner().invoke(
        cli, ["cost", str(run_dir), "--providers", "aws,lambda", "--format", "json"]
    )
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    aws = next(r for r in rows if r["provider"] == "aws" and r["pricing"] == "cloud")
    assert aws["usd_per_hour"] == pytest.approx(2 * load_providers()["aws"]["h100-sxm"].on_demand)
    assert aws["usd_per_mtok_input"] is not None and aws["price_date"]
    assert {r["provider"] for r in rows if r["pricing"] == "cloud"} == {"profile", "aws", "lambda"}


def test_cost_cli_csv_output_parses(run_dir):
    res = CliRunner().invoke(cli, ["cost", str(run_dir), "--format", "csv"])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(io.StringIO(res.output)))
    assert rows and "usd_per_mtok_blended" in rows[0]


@pytest.mark.parametrize(
    "argv",
    [
        ["cost", "--hw", "h100-sxm", "--providers", "nosuchcloud"],
        ["cost"],
        ["cost", "--hw", "no-such-chip"],
    ],
)
def test_cost_cli_bad_input_exits_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert capsys.readouterr().err.startswith("error:")


def test_cost_cli_not_a_run_dir_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["cost", str(tmp_path)])
    assert exc.value.code == 2
    assert "not a finished servesim run" in capsys.readouterr().err
