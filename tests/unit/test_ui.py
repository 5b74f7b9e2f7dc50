"""The web page's logic with Streamlit's AppTest (no browser): fill the form, run a tiny plan,
read the ranked table and the downloads."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("streamlit", reason="the ui extra (streamlit) is not installed")

from streamlit.testing.v1 import AppTest  # noqa: E402

from servesim.ui import logic  # noqa: E402


def _tiny(at: AppTest) -> None:
    at.selectbox(key="model").set_value("llama-3.1-8b")
    at.multiselect(key="hardware").set_value(["h100-sxm"])
    at.number_input(key="tokens_per_day").set_value(2e6)
    at.selectbox(key="pattern").set_value("business-hours")
    at.number_input(key="isl").set_value(256)
    at.number_input(key="osl").set_value(64)
    at.number_input(key="max_sims").set_value(2)
    at.number_input(key="day_requests").set_value(20)
    at.number_input(key="num_requests").set_value(40)


def test_ui_runs_a_plan_and_shows_the_ranked_options():
    at = AppTest.from_file(str(logic.APP_PATH), default_timeout=120).run()
    assert not at.exception
    _tiny(at)
    at.button[0].click().run()
    assert not at.exception, at.exception
    heads = [h.value for h in at.subheader]
    assert any(h.startswith("Top option: ") for h in heads), heads
    table = at.dataframe[0].value
    assert list(table["rank"]) == list(range(1, len(table) + 1))
    assert (
        table["monthly_usd"].diff().dropna()[table["meets_slo"].iloc[1:].ne(False).values] >= -0.01
    ).all()
    assert "per-token" in set(table["billing"])  # the 8B model has dated API prices


def test_ui_bad_input_shows_one_error_line():
    at = AppTest.from_file(str(logic.APP_PATH), default_timeout=60).run()
    _tiny(at)
    at.selectbox(key="pattern").set_value("hourly")
    at.text_input(key="hourly").set_value("1,2,3")
    at.button[0].click().run()
    assert not at.exception
    assert at.error and at.error[0].value.startswith("error: plan: hourly")


def test_ui_logic_downloads_are_complete():
    form = {"model": "llama-3.1-8b", "hardware": ["h100-sxm"], "tokens_per_day": 2e6,
            "pattern": "flat", "isl": 256, "osl": 64, "ttft_p90_ms": 2000, "tpot_p99_ms": 100,
            "max_sims": 2, "day_requests": 20, "num_requests": 40}  # fmt: skip
    res = logic.run_plan(form)
    data = json.loads(logic.plan_json(res))
    assert data["options"] and data["options"][0]["rank"] == 1
    report = logic.report_markdown(res)
    assert "## Options (ranked)" in report and "vllm serve" in report
    assert "--tensor-parallel-size" in logic.launch_text(res)
    det = logic.option_details(res, data["options"][0]["rank"])
    assert "option" in det
    hosted = next(o for o in data["options"] if o["billing"] != "per-token")
    split = logic.option_details(res, hosted["rank"])["cost_split_usd_month"]
    pools = sum(v for k, v in split.items() if k != "of which idle")
    assert pools == pytest.approx(hosted["monthly_usd"])
    assert split["of which idle"] == pytest.approx(hosted["monthly_usd"] * hosted["idle_fraction"])
