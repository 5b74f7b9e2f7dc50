"""The planner's simulated day and its ranking across billing models: the issue's Checks as
properties and hand-computed cases (fake simulator: no engine time), plus CLI bad input."""

from __future__ import annotations

import math

import pytest

from servesim.cli import main
from servesim.specs import SpecError
from servesim.specs.cost import load_api_prices
from servesim.studies.plan import plan
from servesim.studies.planning.day import (
    DAYS_PER_MONTH,
    AutoscalePolicy,
    autoscaled_replica_s,
    autoscaled_replicas,
    day_profile,
    levels,
    weighted_percentile,
)

SLO = {"ttft_ms": {"p90": 100}}
PER_REPLICA_RPS = 1.0  # the fake deployment meets the SLO up to 1 req/s per replica


def fake_runner(cfg):
    """TTFT = 100 ms x (load per replica): a replica meets the SLO up to 1 req/s. Busy time
    grows with load; power = 400 W per busy device + 100 W per idle one."""
    pools = cfg["deployment"]["pools"]
    n = sum(p["instances"] for p in pools)
    devices = n * pools[0]["parallelism"]["tp"] * pools[0]["parallelism"].get("pp", 1)
    rate = cfg["workload"]["arrivals"]["rate"]
    per = rate / n / PER_REPLICA_RPS
    busy = min(per, 1.0)
    return {
        "ttft_ms_p90": 100.0 * per, "completed": 10, "num_requests": 10,
        "output_throughput": 100.0 * rate, "tpot_ms_median": 10.0, "goodput_fraction": 1.0,
        "monthly_usd": devices * 3.0 * 730, "usd_per_mtok_blended": 1.0,
        "device_s": devices * 100.0, "device_busy_s": devices * 100.0 * busy,
        "power_avg_W": devices * (100.0 + 300.0 * busy), "pue": 1.0,
    }  # fmt: skip


def run(pattern: str, tokens_per_day: float = 2.0 * 86400 * 1280, **kw):
    args = dict(tokens_per_day=tokens_per_day, pattern=pattern, isl=1024, osl=256, slo=SLO,
                hardware=["h100-sxm"], tp=[1], caps=[64], runner=fake_runner, max_sims=40,
                extra_replicas=8, top=1)  # fmt: skip
    args.update(kw)
    return plan("llama-3.1-8b", **args)


def option(res, provider, billing):
    return next(o for o in res.options if o["provider"] == provider and o["billing"] == billing)


# ---------------------------------------------------------------- the day and its levels


@pytest.mark.parametrize("pattern", ["flat", "diurnal", "business-hours", "bursty"])
def test_day_profile_weights_average_one_and_levels_cover_busy_hours(pattern):
    p = day_profile(pattern)
    assert len(p.weights) == 24 and math.isclose(sum(p.weights) / 24, 1.0)
    lv = levels(p, 2.0)
    hours = sorted(h for level in lv for h in level.hours)
    assert hours == [h for h in range(24) if p.weights[h] > 0]
    assert math.isclose(sum(level.requests for level in lv), 2.0 * 86400)
    assert lv[0].rate == pytest.approx(2.0 * p.peak_to_mean)


def test_business_hours_day_keeps_its_fourteen_idle_hours():
    p = day_profile("business-hours")
    assert sum(w == 0 for w in p.weights) == 14 and p.peak_to_mean == pytest.approx(2.4)


def test_hourly_profile_needs_24_numbers_named_in_the_error():
    with pytest.raises(SpecError, match="24 non-negative numbers"):
        day_profile("hourly", [1, 2, 3])
    assert day_profile("hourly", [0] * 12 + [2] * 12).weights[-1] == pytest.approx(2.0)


def test_autoscaled_billing_by_hand():
    # 4 replicas at the peak; hours at 0, 1/4, 1/2 and 1 of the peak (6 hours each)
    p = day_profile("hourly", [0] * 6 + [1] * 6 + [2] * 6 + [4] * 6)
    pol = AutoscalePolicy(min_replicas=0, scale_up_s=300, scale_down_s=600)
    up = autoscaled_replicas(p, 4, pol)
    assert up == [0] * 6 + [1] * 6 + [2] * 6 + [4] * 6
    # 18 replica-hours a block... (1 + 2 + 4) x 6 h, plus 1 + 1 + 2 replicas started x 300 s,
    # plus 4 stopped at midnight x 600 s
    assert autoscaled_replica_s(up, pol) == 7 * 6 * 3600 + 4 * 300 + 4 * 600


def test_weighted_percentile_by_hand():
    assert weighted_percentile([1, 2, 3], [1, 1, 2], 50) == 2
    assert weighted_percentile([1, 2, 3], [1, 1, 2], 51) == 3


# ---------------------------------------------------------------- the Checks


def test_per_token_cost_is_pattern_independent_and_exact_dedicated_rises_with_peak():
    tokens = 2.0 * 86400 * 1280
    api = load_api_prices()["deepinfra-llama-3.1-8b"]
    exact = tokens / 1280 * (1024 * api.input_usd_per_mtok + 256 * api.output_usd_per_mtok) / 1e6
    seen = []
    for pattern in ("flat", "diurnal", "business-hours", "bursty"):
        res = run(pattern, tokens)
        o = option(res, "deepinfra", "per-token")
        assert o["monthly_usd"] == pytest.approx(exact * DAYS_PER_MONTH, rel=1e-12)
        ded = option(res, "list", "on-demand")
        peak = day_profile(pattern).peak_to_mean
        # the fleet is sized for the peak: ceil(2 req/s x peak / 1 req/s per replica) replicas
        assert ded["devices"] == math.ceil(2.0 * peak - 1e-9)
        assert ded["monthly_usd"] == pytest.approx(3.0 * ded["devices"] * 730)
        assert ded["usd_per_mtok"] == pytest.approx(
            ded["monthly_usd"] / (tokens * DAYS_PER_MONTH / 1e6)
        )
        seen.append((peak, ded["usd_per_mtok"]))
    seen.sort()
    assert all(b[1] > a[1] for a, b in zip(seen, seen[1:]))


def test_autoscaling_bills_business_hours_only_and_dedicated_bills_every_hour():
    res = run("business-hours")
    ded = option(res, "list", "on-demand")
    auto = option(res, "list", "autoscaling")
    n = ded["devices"]  # 5 replicas for 4.8 req/s at the peak
    up = 10 * 3600 * n + n * 300 + n * 300  # ten hours, one start and one stop per replica
    assert auto["monthly_usd"] == pytest.approx(3.0 * up / 3600 * DAYS_PER_MONTH)
    assert ded["monthly_usd"] == pytest.approx(3.0 * n * 24 * DAYS_PER_MONTH)
    assert auto["monthly_usd"] < 0.5 * ded["monthly_usd"]
    assert "cold start billed, not simulated" in res.day["autoscaling_policy"]


def test_dedicated_usd_per_mtok_matches_the_simulated_utilisation():
    res = run("diurnal")
    ded = option(res, "list", "on-demand")
    day = res.day["deployments"][ded["candidate"]]
    busy = day["busy_fraction"]
    tokens_month = res.day["tokens_per_month"]
    # $/Mtok of the busy device time alone, divided by the busy fraction = the bill's $/Mtok
    busy_usd = 3.0 * ded["devices"] * 730 * busy
    assert ded["usd_per_mtok"] == pytest.approx(busy_usd / (tokens_month / 1e6) / busy)
    assert ded["idle_fraction"] == pytest.approx(1 - busy)
    # the fake's busy device-seconds per request (n x 100 s x load / 10 requests) times the
    # requests each level's hours carry
    p, n = day_profile("diurnal"), ded["devices"]
    lv = levels(p, 2.0)
    per_req = [n * 100.0 * min(level.rate / n, 1.0) / 10 for level in lv]
    expect = sum(min(r * level.requests, n * 3600 * len(level.hours))
                 for r, level in zip(per_req, lv)) / (n * 86400)  # fmt: skip
    assert busy == pytest.approx(expect)


def test_options_json_lists_ranked_options_with_callouts():
    res = run("bursty")
    d = res.to_dict()
    keys = {"provider", "hardware", "billing", "deployment", "monthly_usd", "usd_per_mtok",
            "meets_slo", "reason", "rank", "idle_fraction", "headroom", "slo_attainment"}  # fmt: skip
    assert keys <= set(d["options"][0])
    ranks = [o["rank"] for o in d["options"]]
    assert ranks == list(range(1, len(ranks) + 1))
    cost = [o["monthly_usd"] for o in d["options"] if o["meets_slo"] is not False]
    assert cost == sorted(cost)
    assert d["callouts"]["cheapest"] == 1
    assert d["callouts"]["fastest"] is not None and d["callouts"]["best_balanced"] is not None
    assert d["launch_commands"]["vllm"][1].startswith("vllm serve meta-llama/Llama-3.1-8B")


def test_nothing_meets_the_slo_names_the_closest_with_numbers():
    res = run("flat", slo={"ttft_ms": {"p90": 40}}, extra_replicas=0, max_sims=3)
    assert res.top.empty
    assert res.notes[0].startswith("nothing meets the SLO; closest: colocated-h100-sxm")
    assert "TTFT p90 200 ms > 40" in res.notes[0]


def test_sram_machines_place_a_70b_model_or_say_why_not():
    # Groq and SambaNova have no market price: the bottom-up price (accounting/hwcost) lets the
    # planner search them; a layout that cannot fit or meet the SLO is named with the reason.
    groq = plan("llama-3.3-70b", tokens_per_day=5e6, pattern="bursty", slo=SLO,
                hardware=["groq-lpu"], runner=fake_runner, caps=[64])  # fmt: skip
    assert groq.candidates[["tp", "pp"]].drop_duplicates().values.tolist() == [[32, 80]]
    assert any(n.startswith("groq-lpu tp8 pp1") and "does not fit" in n for n in groq.notes)
    sn = plan("llama-3.3-70b", tokens_per_day=5e6, pattern="bursty", slo=SLO,
              hardware=["sambanova-sn40l"], runner=fake_runner, caps=[64])  # fmt: skip
    assert any("sambanova-sn40l" in n and "TTFT floor" in n for n in sn.notes)
    for res in (groq, sn):
        assert {o["provider"] for o in res.options} >= {"groq", "sambanova"}


def test_cerebras_places_a_70b_model_with_pipeline_stages():
    res = plan("llama-3.3-70b", tokens_per_day=5e6, slo=SLO, hardware=["cerebras-wse3"],
               runner=fake_runner, caps=[64], max_sims=2)  # fmt: skip
    assert (res.candidates["pp"] == 4).all()
    assert any(o["billing"] == "owned" and o["hardware"] == "cerebras-wse3" for o in res.options)


def test_cli_unknown_provider_is_one_line_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["plan", "--model", "llama-3.1-8b", "--rate", "1", "--slo", "ttft.p90=500",
              "--providers", "nosuch"])  # fmt: skip
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: plan: providers = nosuch: unknown provider") and "\n" not in err


def test_cli_impossible_budget_is_one_line_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["plan", "--model", "llama-3.1-8b", "--rate", "1", "--slo", "ttft.p90=500",
              "--budget-usd-month", "1"])  # fmt: skip
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "buys no replica" in err and "over the budget" in err and "\n" not in err


def test_inferenceatlas_example_on_the_engine():
    """5M tokens/day of Llama-3.1-70B, bursty: the API costs tokens x price (DeepInfra $0.40/M:
    about $61/month, not $169), and the dedicated option's $/Mtok is its bill over the day's
    tokens, i.e. the cost of its busy time divided by its simulated busy fraction."""
    res = plan("llama-3.1-70b", tokens_per_day=5e6, pattern="bursty", isl=1024, osl=256,
               slo={"ttft_ms": {"p90": 2000}, "tpot_ms": {"p99": 100}}, hardware=["h100-sxm"],
               tp=[2], caps=[64], max_sims=2, top=1, num_requests=60, day_requests=30)  # fmt: skip
    api = option(res, "deepinfra", "per-token")
    assert api["monthly_usd"] == pytest.approx(5e6 * 0.40 / 1e6 * 730 / 24, rel=0.02)
    ded = option(res, "list", "on-demand")
    busy = res.day["deployments"][ded["candidate"]]["busy_fraction"]
    assert 0 < busy < 1 and ded["idle_fraction"] == pytest.approx(1 - busy)
    month_tokens = 5e6 * 730 / 24
    assert ded["usd_per_mtok"] == pytest.approx(ded["monthly_usd"] / (month_tokens / 1e6))
    busy_only = ded["usd_per_device_hour"] * ded["devices"] * 730 * busy / (month_tokens / 1e6)
    assert ded["usd_per_mtok"] == pytest.approx(busy_only / busy)
    # the peak-rate run alone understates it: its $/Mtok is the bill over the peak's volume
    peak = res.candidates.set_index("id").loc[ded["candidate"], "usd_per_mtok"]
    assert ded["usd_per_mtok"] > 2 * peak


@pytest.mark.parametrize("pattern", ["diurnal", "business-hours", "bursty"])
def test_plan_out_dir_writes_every_file_for_every_pattern(tmp_path, pattern):
    res = run(pattern, out=tmp_path)
    for name in ("plan.json", "options.csv", "best_config.yaml", "launch_commands.sh"):
        assert (tmp_path / name).stat().st_size > 0
    assert res.best_config["workload"]["arrivals"]["rate"] == pytest.approx(
        2.0 * day_profile(pattern).peak_to_mean
    )


def test_a_day_long_trace_gives_its_hourly_shape(tmp_path):
    """One request a minute, except 08:00-10:00 at four a minute: the peak hour is 4 x the
    quietest and the confirming run replays the trace sped up to the peak hour's rate."""
    import pandas as pd

    t = [m * 60.0 for m in range(24 * 60) if not 480 <= m < 600]
    t += [480 * 60.0 + k * 15.0 for k in range(120 * 4)]
    stamps = pd.Timestamp("2025-01-01") + pd.to_timedelta(sorted(t), unit="s")
    path = tmp_path / "day.csv"
    pd.DataFrame({"TIMESTAMP": stamps.strftime("%Y-%m-%d %H:%M:%S.%f"), "ContextTokens": 100,
                  "GeneratedTokens": 20}).to_csv(path, index=False)  # fmt: skip

    def runner(cfg):
        out = fake_runner({**cfg, "workload": {"arrivals": {"rate": 0.01}}})
        return out

    res = plan("llama-3.1-8b", trace=str(path), slo=SLO, hardware=["h100-sxm"], tp=[1],
               caps=[64], runner=runner, max_sims=2)  # fmt: skip
    w = res.day["hourly_weights"]
    assert w[8] == pytest.approx(4 * w[0], rel=0.02) and w[9] == pytest.approx(w[8], rel=0.02)
    assert res.inputs["design_rps"] == pytest.approx(4 / 60, rel=0.02)
    assert res.best_config["workload"]["trace"]["speedup"] == pytest.approx(max(w))


def test_heterogeneous_pd_puts_prefill_and_decode_on_different_devices():
    def runner(cfg):
        pools = cfg["deployment"]["pools"]
        out = fake_runner({**cfg, "deployment": {"pools": pools[:1]}})
        out["device_s"] = sum(p["instances"] * p["parallelism"]["tp"] for p in pools) * 100.0
        return out

    res = plan("llama-3.1-8b", rate=1.0, isl=512, osl=128, slo=SLO, modes=["pd"], tp=[1],
               hardware=["h100-sxm", "h200-sxm"], caps=[64], runner=runner, max_sims=30,
               top=30)  # fmt: skip
    het = res.candidates[res.candidates["hardware"] == "h100-sxm+h200-sxm"]
    assert len(het)
    cfg = res.configs[het.iloc[0]["id"]]
    assert [p["hardware"] for p in cfg["deployment"]["pools"]] == ["h100-sxm", "h200-sxm"]
    opts = [o for o in res.options if o["hardware"] == "h100-sxm+h200-sxm"]
    assert opts and all(
        o["provider"] != "list" or o["billing"] in ("on-demand", "autoscaling") for o in opts
    )
    # a provider prices the pair only where it publishes both devices
    from servesim.specs.cost import load_providers

    both = {p for p, d in load_providers().items() if "h100-sxm" in d and "h200-sxm" in d}
    assert {o["provider"] for o in opts} - {"list", "on-prem"} <= both


def test_autoscaled_fleet_is_simulated_at_its_own_replica_counts():
    seen = []

    def runner(cfg):
        seen.append(
            (cfg["workload"]["arrivals"]["rate"], cfg["deployment"]["pools"][0]["instances"])
        )
        return fake_runner(cfg)

    res = run("diurnal", runner=runner)
    auto = option(res, "list", "autoscaling")
    n = auto["devices"]  # 3 replicas for 3 req/s at the peak
    lv = levels(day_profile("diurnal"), 2.0)
    for level in lv[1:]:
        want = max(1, math.ceil(n * level.rate / lv[0].rate - 1e-9))
        assert (pytest.approx(level.rate), want) in seen
    day = res.day["deployments"][auto["candidate"]]
    assert (
        day["autoscaled"] is not None
        and auto["slo_attainment"] == day["autoscaled"]["slo_attainment"]
    )


@pytest.mark.parametrize(("pricing", "billing"), [("api", {"per-token"}), ("spot", {"spot"})])
def test_pricing_names_a_billing_model_and_the_search_still_runs(pricing, billing):
    res = run("flat", pricing=pricing)
    assert not res.top.empty  # the search's runs are costed without needing a provider
    assert res.options and {o["billing"] for o in res.options} == billing


def test_a_billing_model_nobody_prices_says_so():
    res = run("flat", pricing="reserved")  # the catalog has no reserved H100 price
    assert not res.options
    assert res.notes[0].startswith("no option left after the filters (billing: reserved-1y")
