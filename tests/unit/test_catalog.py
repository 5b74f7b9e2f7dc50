"""Catalog lookup and the `servesim list` / `servesim show` commands."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from servesim import catalog
from servesim.cli import cli, main
from servesim.specs import SpecError


def _run(*args: str):
    result = CliRunner().invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def test_data_dir_finds_repository_catalogs():
    assert catalog.data_dir("hw_profiles").joinpath("h100-sxm.yaml").is_file()
    assert catalog.data_dir("model_templates").joinpath("llama-3.1-8b.yaml").is_file()


def test_normalise_name_lowercases_and_hyphenates():
    assert catalog.normalise_name(" H100_SXM ") == "h100-sxm"


def test_resolve_alias_path_and_unknown(tmp_path):
    assert catalog.resolve("hardware", "MI300").name == "mi300x.yaml"
    assert catalog.resolve("model", "mistralai/Mixtral-8x7B-v0.1").name == "mixtral-8x7b.yaml"
    with pytest.raises(SpecError, match="file not found"):
        catalog.resolve("model", str(tmp_path / "missing" / "config.json"))
    with pytest.raises(SpecError, match="servesim list hardware"):
        catalog.resolve("hardware", "quantum-gpu")


def test_list_hardware_one_row_per_profile_with_dense_peaks():
    frame = catalog.list_hardware()
    assert list(frame["id"]) == catalog.hardware_ids()
    row = frame.set_index("id").loc["h100-sxm"]
    assert row["bf16_tflops"] == pytest.approx(989.4) and row["memory_GB"] == pytest.approx(85.52)


def test_list_models_types_and_params():
    frame = catalog.list_models().set_index("id")
    assert set(frame["type"]) == {"dense", "moe"}
    assert frame.loc["deepseek-v3", "attention"] == "mla"
    assert frame.loc["llama-3.1-8b", "kv_bytes_per_token_bf16"] == 131072
    assert (
        frame.loc["mixtral-8x7b", "params_active_B"] < frame.loc["mixtral-8x7b", "params_total_B"]
    )


def test_list_schedulers_and_traces_are_frames():
    assert list(catalog.list_schedulers().columns) == ["kind", "name", "description"]
    assert "name" in catalog.list_traces().columns


@pytest.mark.parametrize("what", ["hardware", "models", "schedulers", "traces"])
def test_cli_list_table_and_json(what: str):
    table = _run("list", what)
    assert table.exit_code == 0 and table.output.strip()
    as_json = _run("list", what, "--format", "json")
    assert as_json.exit_code == 0 and isinstance(json.loads(as_json.output), list)


def test_cli_list_hardware_json_has_every_profile():
    rows = json.loads(_run("list", "hardware", "--format", "json").output)
    assert {r["id"] for r in rows} == set(catalog.hardware_ids())


def test_cli_show_hardware_json_fields():
    info = json.loads(_run("show", "hardware", "H200", "--format", "json").output)
    assert (
        info["id"] == "h200-sxm"
        and info["memory_GB"] == 150.75
        and info["bf16_tflops_dense"] == 989.4
    )


def test_cli_show_model_prints_params_and_kv():
    out = _run("show", "model", "llama-3.1-8b", "--format", "json")
    info = json.loads(out.output)
    assert info["params_total"] == 8030261248
    kv = info.get("kv_bytes_per_token_bf16", (info.get("kv_bytes_per_token") or {}).get("bf16"))
    assert kv == 131072
    table = _run("show", "model", "deepseek-v3")
    assert table.exit_code == 0 and "params_active" in table.output


def test_cli_show_model_on_hardware_reports_fit():
    pytest.importorskip("servesim.analysis")
    info = json.loads(
        _run("show", "model", "llama-3.1-70b", "--hw", "h100", "--format", "json").output
    )
    assert info["fits"] is False and info["reason"]
    info = json.loads(
        _run(
            "show", "model", "llama-3.1-8b", "--hw", "h100", "--tp", "1", "--format", "json"
        ).output
    )
    assert info["fits"] is True and info["kv_capacity_tokens"] > 0


def test_cli_show_hardware_tco():
    pytest.importorskip("servesim.costing")
    out = _run("show", "hardware", "h100-sxm", "--tco", "--devices", "8", "--format", "json")
    assert out.exit_code == 0 and "tco" in json.loads(out.output)


@pytest.mark.parametrize(
    "args",
    [
        ["show", "hardware", "h100-sxn"],
        ["show", "model", "llama-9"],
        ["show", "model", "llama-3.1-8b", "--hw", "nope-gpu"],
        ["show", "model", "llama-3.1-8b", "--dtype", "fp7"],
        ["list", "gizmos"],
    ],
)
def test_cli_bad_names_exit_2_one_line_no_traceback(capsys, args):
    with pytest.raises(SystemExit) as exc:
        main(args)
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert "Traceback" not in err and err.strip()


def test_list_hardware_compute_units_column_null_where_not_applicable():
    frame = catalog.list_hardware().set_index("id")
    assert frame.loc["a100-sxm", "compute_units"] == 108
    assert frame.loc["mi300x", "compute_units"] == 304
    assert frame.loc["tpu-v5e", "compute_units"] is pd.NA
    table = _run("list", "hardware").output
    assert "compute_units" in table and "<NA>" not in table and "nan" not in table


def test_list_models_dense_models_have_no_expert_counts():
    frame = catalog.list_models().set_index("id")
    assert frame.loc["llama-3.1-8b", "experts"] is pd.NA
    assert frame.loc["mixtral-8x7b", "experts"] == 8
    rows = json.loads(_run("list", "models", "--format", "json").output)
    dense = next(r for r in rows if r["id"] == "llama-3.1-8b")
    assert dense["experts"] is None


def test_cli_show_hardware_compute_units_and_host_share():
    info = json.loads(_run("show", "hardware", "h100", "--format", "json").output)
    assert info["compute_units"] == 132
    assert info["host_W_per_device"] == pytest.approx(info["host_W_per_node"] / 8)
    tpu = json.loads(_run("show", "hardware", "tpu-v5e", "--format", "json").output)
    assert tpu["compute_units"] is None and tpu["price_hour_usd"] == pytest.approx(1.2)
    assert "fitted" in _run("show", "hardware", "tpu-v5e").output


def test_cli_show_model_405b_fp8_on_8xh100_fits_with_little_kv_room():
    pytest.importorskip("servesim.analysis")
    args = ("show", "model", "llama-3.1-405b", "--hw", "h100-sxm", "--tp", "8", "--dtype", "fp8")
    info = json.loads(_run(*args, "--format", "json").output)
    assert info["fits"] is True and "reason" not in info and "name" not in info
    # weights take ~51 of 72 usable GB per device: a few full 128k contexts of KV, not dozens
    assert 0.5 < info["kv_capacity_max_context_seqs"] < 10
    table = _run(*args).output
    assert "kv_bytes_per_token_per_device  32,256 bytes" in table


def test_cli_show_model_deepseek_v3_fp8_on_8xh200_fits_not_on_8xh100():
    pytest.importorskip("servesim.analysis")
    base = ("show", "model", "deepseek-v3", "--tp", "8", "--dtype", "fp8", "--format", "json")
    on_h200 = json.loads(_run(*base, "--hw", "h200-sxm").output)
    assert on_h200["fits"] is True and on_h200["kv_capacity_tokens"] > 100_000
    on_h100 = json.loads(_run(*base, "--hw", "h100-sxm").output)
    assert on_h100["fits"] is False and "does not fit" in on_h100["reason"]
