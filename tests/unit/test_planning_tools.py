"""Capacity bisection, launch-command export, named workloads/targets, user accelerators."""

from __future__ import annotations

import pytest
import yaml

from servesim.specs import SpecError
from servesim.studies.planning.capacity import capacity, format_capacity
from servesim.studies.planning.catalogs import apply_named, derive_hardware
from servesim.studies.planning.export import commands

CFG = {
    "model": "llama-3.1-8b",
    "deployment": {"pools": [{"role": "colocated", "hardware": "h100-sxm", "instances": 1}]},
    "workload": {"arrivals": {"process": "poisson", "rate": 1.0}, "num_requests": 50,
                 "lengths": {"input": {"dist": "fixed", "mean": 128},
                             "output": {"dist": "fixed", "mean": 16}}},
    "slo": {"ttft_ms": {"p90": 100}},
}  # fmt: skip


def threshold_probe(limit: float):
    """TTFT p90 = 100 ms x load / limit: the SLO holds up to `limit` exactly."""

    def probe(cfg, overrides):
        load = next(v for k, v in overrides.items() if k.startswith("workload.a") or "clients" in k)
        return {"ttft_ms_p90": 100.0 * load / limit, "completed": 50, "num_requests": 50}

    return probe


@pytest.mark.parametrize("limit", [0.3, 3.7, 41.0])
def test_capacity_bisection_brackets_the_threshold(limit):
    res = capacity(CFG, probe=threshold_probe(limit), rel_tol=0.02, max_sims=30)
    assert res["converged"]
    assert res["max_value"] <= limit and res["max_value"] >= limit * 0.98
    lo, hi = res["bracket"]
    assert lo <= limit < hi
    assert "largest rate meeting the SLO" in format_capacity(res)


def test_capacity_by_concurrency_is_whole_numbers():
    res = capacity(CFG, by="concurrency", probe=threshold_probe(13), max_sims=30)
    assert res["max_value"] == 13 and all(
        float(p["concurrency"]).is_integer() for p in res["probes"]
    )


def test_capacity_when_nothing_meets_says_closest():
    res = capacity(CFG, probe=threshold_probe(1e-9), max_sims=5)
    assert res["max_value"] is None and format_capacity(res).startswith("no rate tried meets")


def test_capacity_on_the_engine_finds_a_passing_rate():
    res = capacity(CFG, rel_tol=0.25, max_sims=5, num_requests=40)
    assert res["max_value"] is not None and res["max_value"] >= 1.0
    assert all(p["meets_slo"] == (p["rate"] <= res["max_value"]) for p in res["probes"])


def test_export_flags_follow_the_plan_config():
    cfg = {"model": "llama-3.1-70b", "dtype": "fp8",
           "deployment": {"pools": [
               {"role": "prefill", "hardware": "h100-sxm", "instances": 2,
                "parallelism": {"tp": 4, "pp": 1, "ep": 1},
                "scheduler": {"max_num_seqs": 64, "max_num_batched_tokens": 8192}},
               {"role": "decode", "hardware": "h100-sxm", "instances": 3,
                "parallelism": {"tp": 2, "pp": 2, "ep": 1},
                "scheduler": {"max_num_seqs": 256, "max_num_batched_tokens": 1024}}]}}  # fmt: skip
    c = commands(cfg)
    v_pre, v_dec = c["vllm"][1], c["vllm"][3]
    assert v_pre.startswith("vllm serve meta-llama/Llama-3.1-70B --tensor-parallel-size 4")
    assert "--pipeline-parallel-size 2" in v_dec and "--max-num-seqs 256" in v_dec
    assert "--max-num-batched-tokens 1024" in v_dec and "--kv-cache-dtype fp8" in v_dec
    assert "kv_connector" in v_pre and c["vllm"][2] == "# decode: 3 replica(s) of 4 x h100-sxm"
    assert "--disaggregation-mode prefill" in c["sglang"][1] and "--pp-size 2" in c["sglang"][3]
    assert "--tp_size 2 --pp_size 2" in c["trtllm"][3] and "launch_router" in c["sglang"][-1]


def test_derive_hardware_names_every_missing_field_in_one_error():
    with pytest.raises(SpecError) as e:
        derive_hardware({"name": "mychip", "tflops": {"bf16": 500}})
    msg = str(e.value)
    for key in ("memory_GB", "bandwidth_GBps", "scaleup_bandwidth_GBps", "tdp_W",
                "price_hour_usd or purchase_usd"):  # fmt: skip
        assert key in msg


def test_derive_hardware_fills_and_prints_the_rest(tmp_path):
    from servesim.specs.hardware import load_hardware

    path, lines = derive_hardware({"name": "mychip", "tflops": {"bf16": 500, "fp8": 1000},
                                   "memory_GB": 96, "bandwidth_GBps": 4000,
                                   "scaleup_bandwidth_GBps": 400, "tdp_W": 600,
                                   "price_hour_usd": 2.0}, tmp_path)  # fmt: skip
    hw = load_hardware(path)
    assert hw.memory_GB == 96 and hw.idle_W == pytest.approx(72.0) and hw.scaleup_devices == 8
    assert any(line.startswith("mychip.power.idle_W = 72 (estimate: 12% of TDP") for line in lines)


def test_named_workload_and_target_fill_plan_arguments(tmp_path):
    wl = tmp_path / "workloads.yaml"
    wl.write_text(yaml.safe_dump({"chat": {"model": "llama-3.1-8b", "tokens_per_day": 1e6,
                                           "pattern": "diurnal", "slo": {"ttft_ms": {"p90": 500}}}}))  # fmt: skip
    tg = tmp_path / "targets.yaml"
    tg.write_text(yaml.safe_dump({"mine": {"hardware": ["h100-sxm"], "tp": [1, 2],
                                           "accelerators": [{"name": "chipx", "tflops": {"bf16": 400},
                                                             "memory_GB": 80, "bandwidth_GBps": 3000,
                                                             "scaleup_bandwidth_GBps": 300,
                                                             "tdp_W": 500, "purchase_usd": 20000}]}}))  # fmt: skip
    model, kw, derived = apply_named(None, {"pattern": "flat", "isl": 64}, "chat", str(wl), "mine", str(tg),
                            explicit={"isl"})  # fmt: skip
    assert model == "llama-3.1-8b" and kw["tokens_per_day"] == 1e6 and kw["pattern"] == "diurnal"
    assert kw["isl"] == 64 and kw["tp"] == [1, 2]
    assert kw["hardware"][0] == "h100-sxm" and kw["hardware"][1].endswith("chipx.yaml")
    assert any(line.startswith("chipx.power.idle_W = 60") for line in derived)
    with pytest.raises(SpecError, match="no workload of that name; it has: chat"):
        apply_named(None, {}, "nope", str(wl), None, None)


def test_sweep_accepts_a_named_workload_and_target(tmp_path):
    from servesim.sweep import load_sweep_spec

    (tmp_path / "workloads.yaml").write_text(yaml.safe_dump({"chat": {
        "model": "llama-3.1-8b", "tokens_per_day": 86400 * 1280, "pattern": "business-hours",
        "isl": 1024, "osl": 256, "slo": {"ttft_ms": {"p90": 500}}}}))  # fmt: skip
    (tmp_path / "targets.yaml").write_text(
        yaml.safe_dump({"gpus": {"hardware": ["h100-sxm", "h200-sxm"]}})
    )
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump({"base": {"deployment": {"pools": [{"role": "colocated",
                    "hardware": "h100-sxm", "instances": 1}]}, "workload": {"num_requests": 20}},
                    "workload": "chat", "target": "gpus"}))  # fmt: skip
    parsed = load_sweep_spec(spec)
    assert len(parsed.points) == 2
    assert parsed.base["workload"]["arrivals"]["rate"] == pytest.approx(2.4)  # 1 req/s mean x 2.4
    assert parsed.base["model"] == "llama-3.1-8b"
    hw = [dict(p.overrides)["deployment.pools.0.hardware"] for p in parsed.points]
    assert hw == ["h100-sxm", "h200-sxm"]


def test_budget_buys_whole_replicas_and_ranks_by_sustained_rate():
    from servesim.studies.planning.budget import best_under_budget, format_budget

    res = best_under_budget("llama-3.1-8b", devices=3, rate=1.0, isl=128, osl=16,
                            slo={"ttft_ms": {"p90": 300}}, hardware=["h100-sxm"], tp=[1, 2],
                            caps=[64], num_requests=40)  # fmt: skip
    rows = res["rows"]
    by_tp = {r["tp"]: r for r in rows}
    assert by_tp[1]["replicas"] == 3 and by_tp[2]["replicas"] == 1  # floor(3 / devices per replica)
    assert all(r["sustained_rps"] == pytest.approx(r["replicas"] * r["replica_rps"]) for r in rows)
    assert rows[0]["sustained_rps"] >= rows[-1]["sustained_rps"]
    assert "with 3 devices" in format_budget(res)


def test_ui_command_without_the_extra_is_one_error_line(monkeypatch, capsys):
    import importlib.util

    from servesim.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "streamlit" else real(n, *a)
    )
    with pytest.raises(SystemExit) as e:
        main(["ui", "--no-browser"])
    assert e.value.code == 2
    assert "pip install 'servesim[ui]'" in capsys.readouterr().err
