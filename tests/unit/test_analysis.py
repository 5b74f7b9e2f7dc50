"""servesim.roofline and servesim.model_info: tables, totals, fit, bad input."""

from __future__ import annotations

import pytest

from servesim.analysis import batch_aggregates, model_info, roofline, roofline_summary
from servesim.cost.step import Aggregates
from servesim.specs.common import SpecError
from servesim.specs.hardware import load_hardware
from servesim.specs.model import load_model


def test_roofline_names_give_table_with_contract_columns():
    df = roofline("llama-3.1-8b", "h100-sxm", decode=[(32, 2048)], prefill=[(512, 0)])
    assert list(df.columns)[:6] == ["name", "count", "flops", "bytes", "seconds", "total_s"]
    assert {"bound", "share"} <= set(df.columns)
    assert {"qkv_proj", "o_proj", "mlp_gate_up", "mlp_down", "attn_prefill", "attn_decode"} <= set(
        df["name"]
    )
    assert df["share"].sum() == pytest.approx(1.0)
    assert set(df["bound"]) <= {"compute", "memory", "comm", "overhead"}


def test_roofline_summary_step_total_mfu_mbu_bottleneck():
    df = roofline(
        load_model("llama-3.1-70b"),
        load_hardware("h100-sxm"),
        tp=4,
        decode=[(64, 1000)],
        overhead_s=0.0,
    )
    s = roofline_summary(df)
    assert s["step_s"] == pytest.approx(df["total_s"].sum())
    assert 0 < s["mfu"] < s["mbu"] < 1  # decode is memory bound
    assert s["bottleneck"] in set(df["name"]) and s["devices"] == 4


def test_roofline_default_batch_is_one_decode_sequence():
    s = roofline_summary(roofline("llama-3.1-8b", "h100-sxm"))
    assert s["aggregates"]["decode_seqs"] == 1 and s["aggregates"]["decode_ctx"] == 1024


def test_roofline_fp8_faster_than_bf16_in_decode():
    bf = roofline_summary(roofline("llama-3.1-8b", "h100-sxm", decode=[(8, 1000)]))
    f8 = roofline_summary(roofline("llama-3.1-8b", "h100-sxm", decode=[(8, 1000)], dtype="fp8"))
    assert f8["step_s"] < bf["step_s"]


def test_batch_aggregates_closed_form():
    agg = batch_aggregates(prefill=[(100, 50), (10, 0)], decode=[(4, 300), (2, 10)])
    assert agg == Aggregates(110, 2, 100 * 50 + 100 * 101 // 2 + 10 * 11 // 2, 50, 6, 1220, 8)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(decode=[(-1, 100)]), "decode[0]"),
        (dict(decode=[(1, 0)]), "decode[0]"),
        (dict(prefill=[(0, 0)]), "prefill[0]"),
        (dict(prefill=[(5,)]), "prefill[0]"),
        (dict(tp=3), "parallelism.tp"),
        (dict(overhead_s=-1.0), "overhead_s"),
    ],
)
def test_roofline_bad_input_raises_spec_error(kwargs, field):
    with pytest.raises(SpecError) as err:
        roofline("llama-3.1-8b", "h100-sxm", **kwargs)
    assert err.value.field == field


def test_model_info_without_hardware():
    info = model_info("llama-3.1-8b")
    assert info["params_total"] == pytest.approx(8.03e9, rel=0.01)
    assert info["kv_bytes_per_token"] == {"bf16": 131072, "fp8": 65536}
    assert "fits" not in info


def test_model_info_llama_70b_one_h100_does_not_fit_with_reason():
    info = model_info("llama-3.1-70b", "h100-sxm")
    assert info["fits"] is False and "does not fit" in info["reason"]
    assert info["kv_capacity_tokens"] == 0
    assert info["weight_bytes_per_device"] > info["memory_per_device_bytes"]


def test_model_info_fits_with_tp_and_reports_capacity():
    info = model_info("llama-3.1-70b", "h100-sxm", tp=4, dtype="fp8")
    assert info["fits"] is True and info["reason"] == ""
    assert info["kv_capacity_tokens"] > 0 and info["kv_bytes_per_token"]["fp8"] == 80 * 2 * 8 * 128
