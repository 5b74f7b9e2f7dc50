"""AF step time in closed form, and the MoE expert-load imbalance factor."""

import pytest

from servesim.cost.afstep import (
    af_step_time,
    expert_popularity,
    micro_batch_rows,
    moe_imbalance,
    schedule_makespan,
)
from servesim.specs import SpecError


def test_af_step_time_one_micro_batch_free_link_is_sum_of_parts():
    s = af_step_time(2e-4, 3e-4, 0.0, 1, 61)
    assert s.seconds == pytest.approx(61 * 5e-4)
    assert s.attention_busy + s.ffn_busy == pytest.approx(1.0)


def test_af_step_time_two_micro_batches_hand_worked_schedule():
    # t_a = t_f = 1, free link, m = 2, L = 2: A0 [0,1] A1 [1,2] F0 [1,2] F1 [2,3];
    # layer 2: A0 [2,3] A1 [3,4] F0 [3,4] F1 [4,5] -> 5
    s = af_step_time(1.0, 1.0, 0.0, 2, 2)
    assert s.seconds == pytest.approx(5.0)
    assert s.period_s == pytest.approx(2.0)
    assert s.attention_busy == pytest.approx(4 / 5)


def test_af_step_time_latency_bound_adds_round_trip_per_layer():
    # t_a = t_f = 1, t_c = 2, m = 2, L = 2: round trip 6 > m * max = 4 -> 6 + 2 + 6 = 14
    s = af_step_time(1.0, 1.0, 2.0, 2, 2)
    assert s.seconds == pytest.approx(14.0)
    assert s.bound == "latency"


def test_af_step_time_ffn_bottleneck_reports_ffn_bound():
    s = af_step_time(1.0, 3.0, 0.1, 4, 10)
    assert s.bound == "ffn"
    assert s.ffn_busy > s.attention_busy
    assert s.seconds == pytest.approx(schedule_makespan([1.0, 0.1, 3.0, 0.1], 4, 10))


def test_af_step_time_bad_inputs_raise():
    with pytest.raises(ValueError):
        af_step_time(1.0, 1.0, 0.0, 0, 1)
    with pytest.raises(ValueError):
        af_step_time(-1.0, 1.0, 0.0, 1, 1)


def test_micro_batch_rows_split_rounds_up():
    assert micro_batch_rows(10, 3) == 4
    assert micro_batch_rows(9, 3) == 3
    assert micro_batch_rows(0, 3) == 0


def test_moe_imbalance_uniform_is_one():
    assert moe_imbalance(256, 32) == 1.0
    assert moe_imbalance(256, 1, "zipf", 1.2) == 1.0


def test_moe_imbalance_zipf_hand_worked():
    # 4 experts, shares ~ 1, 1/2, 1/3, 1/4 (sum 25/12), 2 ranks round-robin: rank 0 holds 1 + 1/3
    # -> share 16/25, times 2 ranks = 1.28
    assert moe_imbalance(4, 2, "zipf", 1.0) == pytest.approx(1.28)
    assert sum(expert_popularity(4, "zipf", 1.0)) == pytest.approx(1.0)


def test_moe_imbalance_fixed_factor_and_bad_factor():
    assert moe_imbalance(8, 8, "fixed", factor=1.5) == 1.5
    with pytest.raises(SpecError):
        moe_imbalance(8, 8, "fixed", factor=0.5)
