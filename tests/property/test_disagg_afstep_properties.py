"""The AF closed form equals the event-by-event schedule of the same cyclic flow shop."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servesim.cost.afstep import af_step_time, schedule_makespan

times = st.one_of(st.just(0.0), st.floats(min_value=1e-6, max_value=1e-2))


@settings(max_examples=200, deadline=None)
@given(times, times, times, st.integers(1, 8), st.integers(1, 12))
def test_af_step_time_any_stages_equals_schedule(ta, tf, tc, m, L):
    s = af_step_time(ta, tf, tc, m, L)
    assert s.seconds == pytest.approx(
        schedule_makespan([ta, tc, tf, tc], m, L), rel=1e-9, abs=1e-15
    )
    for frac in (s.attention_busy, s.ffn_busy, s.link_busy):
        assert 0.0 <= frac <= 1.0 + 1e-12


@settings(max_examples=100, deadline=None)
@given(times, times, times, st.integers(1, 8), st.integers(1, 12))
def test_af_step_time_more_micro_batches_never_less_total_work_time(ta, tf, tc, m, L):
    # m micro-batches of the same size take at least m times one side's work per layer
    s = af_step_time(ta, tf, tc, m, L)
    assert s.seconds >= L * m * max(ta, tf, tc) - 1e-15
