"""Synthetic workloads: arrival processes, length distributions, closed loop, prefixes, determinism."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from servesim.specs.workload import LENGTH_PRESETS as PRESET_NAMES
from servesim.specs.workload import ArrivalSpec, LengthDist, parse_workload
from servesim.workload import RequestSpec, build, streams, synthetic

REPO = Path(__file__).resolve().parents[2]
CONV_SAMPLE = str(REPO / "traces" / "azure_conv_sample.csv")
FIXED = {"input": {"dist": "fixed", "mean": 100}, "output": {"dist": "fixed", "mean": 10}}


def _times(spec: ArrivalSpec, n: int, seed: int = 0) -> np.ndarray:
    parts, have = [], 0
    for chunk in synthetic.arrival_chunks(spec, np.random.default_rng(seed)):
        parts.append(chunk)
        have += len(chunk)
        if have >= n:
            return np.concatenate(parts)[:n]
    raise AssertionError("unreachable: arrival streams are endless")


def _cv(t: np.ndarray) -> float:
    g = np.diff(t)
    return float(g.std() / g.mean())


def _workload(data: dict, seed: int = 0):
    return build(parse_workload(data, "test"), seed)


# -- arrivals -------------------------------------------------------------------------------------


def test_poisson_arrivals_mean_rate_and_cv_one():
    t = _times(ArrivalSpec("poisson", 8.0), 100_000)
    assert t[0] == 0.0 and np.all(np.diff(t) >= 0)
    assert len(t) / t[-1] == pytest.approx(8.0, rel=0.02)
    assert _cv(t) == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize("cv", [0.5, 2.0, 4.0])
def test_gamma_arrivals_given_cv(cv):
    t = _times(ArrivalSpec("gamma", 5.0, cv=cv), 200_000)
    assert len(t) / t[-1] == pytest.approx(5.0, rel=0.05)
    assert _cv(t) == pytest.approx(cv, rel=0.05)


def test_constant_arrivals_cv_zero_exact_spacing():
    t = _times(ArrivalSpec("constant", 4.0), 20_000)
    assert np.allclose(np.diff(t), 0.25)
    assert _cv(t) == pytest.approx(0.0, abs=1e-9)
    assert t[-1] == 19_999 / 4.0  # no drift across chunks


def test_diurnal_arrivals_mean_rate_and_peak_to_trough():
    spec = ArrivalSpec("diurnal", 10.0, peak_to_trough=3.0, period_s=1000.0)
    t = _times(spec, 100_000)
    t = t[t < 9000.0]  # whole periods
    assert len(t) / 9000.0 == pytest.approx(10.0, rel=0.03)
    phase = (t % 1000.0) / 1000.0
    trough = ((phase < 0.05) | (phase > 0.95)).sum()
    peak = ((phase > 0.45) & (phase < 0.55)).sum()
    assert peak / trough == pytest.approx(3.0, rel=0.1)


def test_bursty_arrivals_silent_when_off():
    spec = ArrivalSpec("bursty", 100.0, on_s=2.0, off_s=8.0)
    t = _times(spec, 20_000)
    assert np.all((t % 10.0) < 2.0)
    assert len(t) / t[-1] == pytest.approx(spec.mean_rate, rel=0.05)


# -- lengths --------------------------------------------------------------------------------------


def test_uniform_range_ratio_follows_vllm_bounds():
    # vLLM: integers in [floor(mean(1-r)), ceil(mean(1+r))], both included
    assert synthetic.uniform_bounds(1000, 0.5, output=False) == (500, 1500)
    assert synthetic.uniform_bounds(10, 0.95, output=True) == (1, 20)
    assert synthetic.uniform_bounds(128, 0.0, output=True) == (128, 128)
    f = synthetic.dist_sampler(LengthDist("uniform", mean=100, range_ratio=0.1), "input", None)
    x = f(np.random.default_rng(0), 50_000)
    assert x.min() == 90 and x.max() == 110
    assert len(np.unique(x)) == 21
    assert x.mean() == pytest.approx(100, rel=0.01)


def test_lognormal_mean_is_arithmetic_mean():
    f = synthetic.dist_sampler(LengthDist("lognormal", mean=1000, sigma=0.8), "input", None)
    x = f(np.random.default_rng(1), 200_000)
    assert x.mean() == pytest.approx(1000, rel=0.02)
    assert np.median(x) == pytest.approx(1000 * np.exp(-0.32), rel=0.02)


def test_fixed_clipped_and_at_least_one():
    f = synthetic.dist_sampler(LengthDist("fixed", mean=5000, max=4096), "input", None)
    assert f(np.random.default_rng(0), 3).tolist() == [4096] * 3
    g = synthetic.dist_sampler(LengthDist("lognormal", mean=2, sigma=2.0), "output", None)
    assert g(np.random.default_rng(0), 10_000).min() >= 1


def test_empirical_lengths_resample_trace_values():
    w = _workload(
        {
            "arrivals": {"process": "poisson", "rate": 5},
            "lengths": {"empirical": CONV_SAMPLE},
            "num_requests": 3000,
        }
    )
    from servesim.workload.traces import load_trace

    df = load_trace(CONV_SAMPLE)
    pairs = set(zip(df["prompt_tokens"], df["output_tokens"]))
    reqs = list(w.open_loop())
    assert all((r.prompt_tokens, r.output_tokens) in pairs for r in reqs)  # joint pairs kept


def test_lognormal_fit_to_trace_matches_log_moments():
    w = _workload(
        {
            "clients": {"concurrency": 1},
            "num_requests": 1,
            "lengths": {
                "input": {"dist": "lognormal", "path": CONV_SAMPLE},
                "output": {"dist": "empirical", "path": CONV_SAMPLE},
            },
        }
    )
    x = np.array([w.next_lengths().prompt_tokens for _ in range(20_000)])
    from servesim.workload.traces import load_trace

    real = np.log(load_trace(CONV_SAMPLE)["prompt_tokens"].to_numpy())
    assert np.log(x).mean() == pytest.approx(real.mean(), abs=0.05)


def test_presets_match_spec_names_and_azure_conv_percentiles():
    assert set(synthetic.LENGTH_PRESETS) == set(PRESET_NAMES)
    p = synthetic.LENGTH_PRESETS["azure-conv"]
    rng = np.random.default_rng(0)
    x = synthetic.sample_mixture(p["input"], rng, 200_000)
    y = synthetic.sample_mixture(p["output"], rng, 200_000)
    # Azure conv 2023: input mean 1155, p50 1020; output mean 211, p50 129 (traces/README.md)
    assert x.mean() == pytest.approx(1155, rel=0.05) and np.median(x) == pytest.approx(
        1020, rel=0.05
    )
    assert y.mean() == pytest.approx(211, rel=0.05) and np.median(y) == pytest.approx(129, rel=0.05)


# -- workloads ------------------------------------------------------------------------------------


def test_open_loop_num_requests_and_sorted():
    w = _workload(
        {"arrivals": {"process": "poisson", "rate": 50}, "lengths": FIXED, "num_requests": 20_000}
    )
    reqs = list(w.open_loop())
    assert len(reqs) == 20_000 == w.num_requests
    assert all(isinstance(r, RequestSpec) for r in reqs[:5])
    arr = np.array([r.arrival_s for r in reqs])
    assert np.all(np.diff(arr) >= 0)
    assert reqs[0] == RequestSpec(0.0, 100, 10)


def test_open_loop_duration_stops_at_horizon():
    w = _workload(
        {"arrivals": {"process": "constant", "rate": 10}, "lengths": FIXED, "duration_s": 5}
    )
    reqs = list(w.open_loop())
    assert len(reqs) == 50 and reqs[-1].arrival_s < 5


def test_same_seed_identical_stream_other_seed_differs():
    data = {
        "arrivals": {"process": "gamma", "rate": 5, "cv": 2},
        "lengths": {"preset": "azure-code"},
        "num_requests": 3000,
        "prefix": {"shared_tokens": 256, "groups": 3},
    }
    a = list(_workload(data, 7).open_loop())
    b = list(_workload(data, 7).open_loop())
    c = list(_workload(data, 8).open_loop())
    assert a == b and a != c
    w = _workload(data, 7)
    assert list(w.open_loop()) == list(w.open_loop())  # each call replays


def test_streams_are_seedsequence_children():
    kids = np.random.SeedSequence(5).spawn(2)
    s = streams(5)
    assert s["arrivals"].random() == np.random.default_rng(kids[0]).random()
    assert s["lengths"].random() == np.random.default_rng(kids[1]).random()
    from servesim.specs.config import rng_streams  # the run's streams: the same children

    assert streams(5)["arrivals"].random() == rng_streams(5)["arrivals"].random()


def test_closed_loop_spec_and_next_lengths():
    w = _workload(
        {
            "clients": {"concurrency": 32, "think_time_s": 0.5},
            "num_requests": 100,
            "lengths": {
                "input": {"dist": "uniform", "mean": 1024, "range_ratio": 0.5},
                "output": 128,
            },
        }
    )
    assert w.open_loop() is None
    assert w.closed_loop.concurrency == 32 and w.closed_loop.think_time_s == 0.5
    assert w.num_requests == 100
    reqs = [w.next_lengths() for _ in range(20_000)]  # crosses chunk boundaries
    assert all(
        r.arrival_s == 0.0 and 512 <= r.prompt_tokens <= 1536 and r.output_tokens == 128
        for r in reqs
    )
    again = _workload(
        {
            "clients": {"concurrency": 32, "think_time_s": 0.5},
            "num_requests": 100,
            "lengths": {
                "input": {"dist": "uniform", "mean": 1024, "range_ratio": 0.5},
                "output": 128,
            },
        }
    )
    assert [again.next_lengths() for _ in range(100)] == reqs[:100]


def test_trace_workload_speedup_and_cap():
    w = _workload({"trace": {"path": CONV_SAMPLE, "speedup": 4.0}, "num_requests": 2000})
    reqs = list(w.open_loop())
    assert len(reqs) == 2000 == w.num_requests
    slow = list(_workload({"trace": CONV_SAMPLE, "num_requests": 2000}).open_loop())
    assert reqs[-1].arrival_s == pytest.approx(slow[-1].arrival_s / 4)


def test_trace_workload_synthetic_lengths_override():
    reqs = list(_workload({"trace": CONV_SAMPLE, "num_requests": 50, "lengths": FIXED}).open_loop())
    assert {(r.prompt_tokens, r.output_tokens) for r in reqs} == {(100, 10)}


# -- prefixes and sessions ------------------------------------------------------------------------


def test_prefix_groups_share_leading_block_hashes():
    reqs = list(
        _workload(
            {
                "arrivals": {"process": "poisson", "rate": 5},
                "lengths": FIXED,
                "num_requests": 200,
                "prefix": {"shared_tokens": 70, "groups": 2},
            }
        ).open_loop()
    )
    assert all(
        r.prompt_tokens == 170 for r in reqs
    )  # shared prefix + drawn input, as vLLM's prefix_len
    assert all(len(r.prefix_hashes) == 70 // 16 for r in reqs)  # only shared full blocks carry ids
    assert len({r.prefix_hashes for r in reqs}) == 2  # one shared prefix per group


def test_sessions_grow_context_and_reuse_prefix():
    reqs = list(
        _workload(
            {
                "arrivals": {"process": "poisson", "rate": 5},
                "lengths": FIXED,
                "num_requests": 300,
                "sessions": {"concurrent": 4, "turns": 3},
            }
        ).open_loop()
    )
    by_session: dict[int, list[RequestSpec]] = {}
    for r in reqs:
        by_session.setdefault(r.session_id, []).append(r)
    assert all(len(v) <= 3 for v in by_session.values())
    full = [v for v in by_session.values() if len(v) == 3]
    assert full
    for turns in full:
        assert [t.prompt_tokens for t in turns] == [100, 210, 320]  # + previous output + new input
        for prev, nxt in itertools.pairwise(turns):
            assert nxt.prefix_hashes[: len(prev.prefix_hashes)] == prev.prefix_hashes
        assert all(len(t.prefix_hashes) == t.prompt_tokens // 16 for t in turns)
    assert len({v[0].prefix_hashes[0] for v in by_session.values()}) == len(by_session)  # private


def test_sessions_with_prefix_start_from_group_prefix():
    reqs = list(
        _workload(
            {
                "arrivals": {"process": "poisson", "rate": 5},
                "lengths": FIXED,
                "num_requests": 100,
                "prefix": {"shared_tokens": 32, "groups": 1},
                "sessions": {"concurrent": 3, "turns": 2},
            }
        ).open_loop()
    )
    assert len({r.prefix_hashes[:2] for r in reqs}) == 1
    assert min(r.prompt_tokens for r in reqs) == 132


def test_mooncake_hashes_expand_to_16_token_blocks():
    assert synthetic.expand_hashes((46, 47), 512, 600) == tuple(
        46 * 32 + j for j in range(32)
    ) + tuple(47 * 32 + j for j in range(5))
    reqs = list(_workload({"trace": str(REPO / "traces" / "mooncake_sample.jsonl")}).open_loop())
    assert all(len(r.prefix_hashes) == r.prompt_tokens // 16 for r in reqs)
    firsts = [r.prefix_hashes[0] for r in reqs]
    assert len(set(firsts)) < len(firsts) / 10  # shared system prompts
