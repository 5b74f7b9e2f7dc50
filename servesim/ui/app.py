"""The servesim planner page (Streamlit): `servesim ui`, or `streamlit run servesim/ui/app.py`."""

from __future__ import annotations

import streamlit as st

from servesim.specs.common import SpecError
from servesim.ui import logic

st.set_page_config(page_title="servesim planner", layout="wide")
st.title("servesim capacity planner")
st.caption("Simulated day of traffic, every provider and billing model, per-token APIs; offline.")

models, hardware = logic.choices()
with st.form("plan"):
    c1, c2, c3 = st.columns(3)
    model = c1.selectbox(
        "Model",
        models,
        index=models.index("llama-3.1-8b") if "llama-3.1-8b" in models else 0,
        key="model",
    )
    hw = c1.multiselect(
        "Hardware",
        hardware,
        default=["h100-sxm"] if "h100-sxm" in hardware else hardware[:1],
        key="hardware",
    )
    tokens = c2.number_input(
        "Tokens per day", min_value=0.0, value=5e6, step=1e6, format="%.0f", key="tokens_per_day"
    )
    pattern = c2.selectbox("Traffic pattern", logic.PATTERNS, key="pattern")
    hourly = c2.text_input("Hourly profile (24 numbers, for pattern hourly)", "", key="hourly")
    trace = c2.file_uploader("Or a trace (CSV/JSONL)", type=["csv", "jsonl"], key="trace")
    isl = c3.number_input("Input tokens", min_value=1, value=1024, key="isl")
    osl = c3.number_input("Output tokens", min_value=1, value=256, key="osl")
    ttft = c3.number_input("SLO TTFT p90 (ms)", min_value=0.0, value=2000.0, key="ttft_p90_ms")
    tpot = c3.number_input("SLO TPOT p99 (ms)", min_value=0.0, value=100.0, key="tpot_p99_ms")
    with st.expander("Search and pricing"):
        billing = st.multiselect(
            "Billing models (empty: all)",
            [
                "on-demand",
                "reserved-1y",
                "reserved-3y",
                "spot",
                "autoscaling",
                "owned",
                "per-token",
            ],
            key="billing",
        )
        max_sims = st.number_input("Max simulations", min_value=1, value=12, key="max_sims")
        day_requests = st.number_input(
            "Requests per day level", min_value=10, value=200, key="day_requests"
        )
        num_requests = st.number_input(
            "Requests per search run (0: a minute of traffic)",
            min_value=0,
            value=0,
            key="num_requests",
        )
        cap = st.number_input("max_num_seqs", min_value=1, value=64, key="max_num_seqs")
    submitted = st.form_submit_button("Run plan")

if submitted:
    form = {"model": model, "hardware": hw, "tokens_per_day": tokens, "pattern": pattern,
            "hourly": hourly, "isl": isl, "osl": osl, "ttft_p90_ms": ttft, "tpot_p99_ms": tpot,
            "billing": billing, "max_sims": max_sims, "day_requests": day_requests,
            "num_requests": num_requests or None, "max_num_seqs": cap}  # fmt: skip
    if trace is not None:
        import tempfile
        from pathlib import Path

        path = Path(tempfile.mkdtemp()) / trace.name
        path.write_bytes(trace.getvalue())
        form["trace_path"] = str(path)
    try:
        with st.spinner("simulating the day..."):
            st.session_state["result"] = logic.run_plan(form)
        st.session_state.pop("error", None)
    except SpecError as exc:
        st.session_state["error"] = str(exc)
        st.session_state.pop("result", None)

if "error" in st.session_state:
    st.error(f"error: {st.session_state['error']}")
result = st.session_state.get("result")
if result is not None:
    st.subheader(logic.top_row_text(result))
    for line in logic.callout_lines(result):
        st.markdown(f"- {line}")
    st.dataframe(logic.options_table(result), use_container_width=True, hide_index=True)
    front = logic.pareto_frame(result)
    if not front.empty:
        st.caption("Cost against latency (simulated options)")
        st.scatter_chart(front, x="latency_ms", y="monthly_usd", color="billing")
    if result.options:
        rank = st.selectbox("Details of option", [o["rank"] for o in result.options], key="detail")
        st.json(logic.option_details(result, int(rank)))
    d1, d2, d3 = st.columns(3)
    d1.download_button(
        "Download plan (JSON)", logic.plan_json(result), "plan.json", "application/json"
    )
    d2.download_button(
        "Download report", logic.report_markdown(result), "report.md", "text/markdown"
    )
    d3.download_button(
        "Download launch commands", logic.launch_text(result), "launch_commands.sh", "text/x-sh"
    )
    if result.notes:
        with st.expander("Notes"):
            for n in result.notes:
                st.markdown(f"- {n}")
