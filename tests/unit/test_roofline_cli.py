"""`servesim roofline`: table, JSON and CSV output; bad input is one line and exit code 2."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

from servesim.cli import cli, main

BASE = ["roofline", "--model", "llama-3.1-8b", "--hw", "h100-sxm"]


def test_roofline_cli_table_shows_ops_and_summary():
    res = CliRunner().invoke(cli, BASE + ["--decode", "32@1024", "--prefill", "256@512"])
    assert res.exit_code == 0, res.output
    for word in ("qkv_proj", "attn_decode", "attn_prefill", "lm_head", "MFU", "bottleneck", "step"):
        assert word in res.output


def test_roofline_cli_json_has_ops_and_summary():
    res = CliRunner().invoke(cli, BASE + ["--tp", "2", "--decode", "8@100", "--format", "json"])
    data = json.loads(res.output)
    assert {r["name"] for r in data["ops"]} >= {"tp_allreduce", "mlp_down"}
    assert data["summary"]["devices"] == 2 and data["summary"]["step_s"] > 0


def test_roofline_cli_csv_rows():
    res = CliRunner().invoke(cli, BASE + ["--prefill", "128", "--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(res.output)))
    assert rows[0].keys() >= {"name", "count", "flops", "bytes", "seconds", "bound", "share"}
    assert any(r["name"] == "attn_prefill" for r in rows)


@pytest.mark.parametrize(
    "args",
    [
        ["roofline", "--model", "no-such-model", "--hw", "h100-sxm"],
        ["roofline", "--model", "llama-3.1-8b", "--hw", "no-such-hw"],
        BASE + ["--tp", "3"],
        BASE + ["--decode", "8x100"],
        BASE + ["--decode", "0@100"],
        BASE + ["--prefill", "-5"],
        BASE + ["--dtype", "fp7"],
    ],
)
def test_roofline_cli_bad_input_exits_2_with_one_line(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")
