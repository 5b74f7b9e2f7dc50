"""Properties of every synthetic workload: sorted arrivals, lengths >= 1, counts, determinism."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from servesim.specs.workload import parse_workload
from servesim.workload import build

rates = st.floats(0.05, 500.0, allow_nan=False, allow_infinity=False)
positive = st.floats(0.01, 100.0, allow_nan=False, allow_infinity=False)

arrivals = st.one_of(
    st.builds(lambda r: {"process": "poisson", "rate": r}, rates),
    st.builds(lambda r, cv: {"process": "gamma", "rate": r, "cv": cv}, rates, st.floats(0.1, 10.0)),
    st.builds(lambda r: {"process": "constant", "rate": r}, rates),
    st.builds(
        lambda r, p, per: {"process": "diurnal", "rate": r, "peak_to_trough": p, "period_s": per},
        rates,
        st.floats(1.0, 20.0),
        positive,
    ),
    st.builds(
        lambda r, on, off: {"process": "bursty", "rate": r, "on_s": on, "off_s": off},
        rates,
        positive,
        st.floats(0.0, 100.0),
    ),
)
mean = st.integers(1, 20_000)
dists = st.one_of(
    st.builds(lambda m: {"dist": "fixed", "mean": m}, mean),
    st.builds(
        lambda m, r: {"dist": "uniform", "mean": m, "range_ratio": r}, mean, st.floats(0.0, 0.99)
    ),
    st.builds(
        lambda m, s: {"dist": "lognormal", "mean": m, "sigma": s}, mean, st.floats(0.05, 3.0)
    ),
)
lengths = st.one_of(
    st.builds(lambda i, o: {"input": i, "output": o}, dists, dists),
    st.sampled_from([{"preset": "azure-conv"}, {"preset": "azure-code"}]),
)
extras = st.sampled_from(
    [
        {},
        {"prefix": {"shared_tokens": 100, "groups": 3}},
        {"sessions": {"concurrent": 5, "turns": 4}},
    ]
)


@settings(max_examples=40, deadline=None)
@given(arrivals, lengths, extras, st.integers(1, 3000), st.integers(0, 2**32 - 1))
def test_open_loop_sorted_lengths_positive_count_exact(arr, lens, extra, n, seed):
    spec = parse_workload({"arrivals": arr, "lengths": lens, "num_requests": n, **extra}, "prop")
    reqs = list(build(spec, seed).open_loop())
    assert len(reqs) == n
    t = np.array([r.arrival_s for r in reqs])
    assert t[0] >= 0 and np.all(np.diff(t) >= 0) and np.all(np.isfinite(t))
    assert min(r.prompt_tokens for r in reqs) >= 1
    assert min(r.output_tokens for r in reqs) >= 1
    assert all(len(r.prefix_hashes) <= r.prompt_tokens // 16 for r in reqs)
    assert list(build(spec, seed).open_loop())[:50] == reqs[:50]


@settings(max_examples=25, deadline=None)
@given(arrivals, st.floats(1.0, 50.0), st.integers(0, 1000))
def test_open_loop_duration_bounds_arrivals(arr, horizon, seed):
    spec = parse_workload(
        {
            "arrivals": arr,
            "lengths": {"input": 8, "output": 8},
            "duration_s": horizon,
            "num_requests": 20_000,
        },
        "prop",
    )
    reqs = list(build(spec, seed).open_loop())
    assert all(r.arrival_s < horizon for r in reqs)
