"""Reports: every figure of every input lands in the HTML (base64) or beside the Markdown."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from servesim.report import build_sections, report

from servesim.cli import cli
from servesim.specs import SpecError


def make_run_dir(d):
    d.mkdir()
    rng = np.random.default_rng(0)
    n = 50
    arrival = np.sort(rng.uniform(0, 10, n))
    first = arrival + rng.uniform(0.05, 0.3, n)
    out_tok = rng.integers(1, 100, n)
    finish = first + out_tok * 0.02
    pd.DataFrame(
        {
            "request_id": np.arange(n),
            "arrival_s": arrival,
            "first_token_s": first,
            "finish_s": finish,
            "output_tokens": out_tok,
            "prompt_tokens": 100,
        }
    ).to_parquet(d / "requests.parquet")
    m = 300
    pd.DataFrame(
        {
            "instance": np.arange(m) % 2,
            "start_s": np.linspace(0, 12, m),
            "duration_s": 0.02,
            "batch_size": rng.integers(1, 30, m),
            "kv_used_blocks": rng.integers(0, 90, m),
            "kv_total_blocks": 100,
        }
    ).to_parquet(d / "steps.parquet")
    summary = {
        "completed": n,
        "output_throughput": 400.0,
        "ttft_ms_p99": 290.0,
        "cost.colocated.cost_usd": 1.0,
        "cost.colocated.idle_cost_usd": 0.25,
        "energy.colocated.energy_kwh": 0.5,
        "energy.colocated.energy_device_kwh": 0.3,
        "energy.colocated.energy_host_kwh": 0.1,
    }
    (d / "summary.json").write_text(json.dumps(summary))
    return d


def make_sweep_dir(d):
    from servesim.sweep import sweep

    def runner(base, ov, seed):
        r = ov["workload.arrivals.rate"]
        return {
            "output_throughput": r * 100,
            "ttft_ms_p99": 50 + r**2,
            "tpot_ms_p99": 20 + r,
            "request_throughput": r,
        }

    spec = {
        "base": {"m": 1},
        "grid": {
            "deployment.pools.0.hardware": ["h100-sxm", "h200-sxm"],
            "workload.arrivals.rate": [1, 2, 4, 8],
        },
        "metrics": ["output_throughput", "ttft_ms_p99", "tpot_ms_p99", "request_throughput"],
    }
    sweep(spec, jobs=1, out=d, runner=runner)
    return d


def make_plan_dir(d):
    from test_plan import fake_runner

    from servesim.studies.plan import plan

    plan(
        "llama-3.1-8b",
        rate=5.0,
        isl=512,
        osl=128,
        slo={"ttft_ms": {"p90": 300}},
        hardware=["h100-sxm"],
        runner=fake_runner,
        out=d,
        max_sims=8,
    )
    return d


def make_bench_dir(d):
    d.mkdir()
    for conc in (1, 4, 16):
        data = {
            "output_throughput": 100.0 * conc,
            "mean_ttft_ms": 50.0 * conc,
            "p99_ttft_ms": 90.0 * conc,
            "median_tpot_ms": 10.0 + conc,
            "p99_tpot_ms": 12.0 + conc,
            "servesim": {},
        }
        (d / f"x_tp1_isl128_osl128_conc{conc}.json").write_text(json.dumps(data))
    return d


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("report_inputs")
    return [
        make_run_dir(tmp_path / "run"),
        make_sweep_dir(tmp_path / "sweep"),
        make_plan_dir(tmp_path / "plan"),
        make_bench_dir(tmp_path / "bench"),
    ]


# run: CDFs, batch/KV, cost/energy; sweep: throughput-latency; plan: two fronts; bench: one curve
EXPECTED_FIGURES = 3 + 1 + 2 + 1


def test_report_sections_hold_expected_figures(inputs):
    sections = build_sections(inputs[:1])
    assert [f.title for f in sections[0].figures] == [
        "Latency CDFs",
        "Batch size, KV use and queue over time (all instances)",
        "Cost and energy breakdown",
    ]


def test_report_html_embeds_every_figure(tmp_path, inputs):
    expected = EXPECTED_FIGURES
    out = report(inputs, tmp_path / "r.html")
    text = out.read_text()
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    imgs = re.findall(r"<img [^>]*src='data:image/png;base64,([A-Za-z0-9+/=]+)'", text)
    assert len(imgs) == expected
    import base64

    assert all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in imgs)


def test_report_markdown_links_png_files_beside_it(tmp_path, inputs):
    out = report(inputs, tmp_path / "r.md")
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", out.read_text())
    assert len(links) == EXPECTED_FIGURES
    for link in links:
        f = tmp_path / link
        assert f.is_file() and f.read_bytes()[:4] == b"\x89PNG"


def test_report_cli_writes_html(tmp_path, inputs):
    res = CliRunner().invoke(cli, ["report", str(inputs[0]), "-o", str(tmp_path / "x.html")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "x.html").read_text().count("<img") == 3


def test_report_bad_suffix_raises_specerror(tmp_path, inputs):
    with pytest.raises(SpecError, match=".html or .md"):
        report(inputs[:1], tmp_path / "r.pdf")
